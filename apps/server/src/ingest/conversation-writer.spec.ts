import { jest } from '@jest/globals';
import type { Settings } from '@seqline/config';
import type { ConversationState } from '@seqline/persistence';
import type { ConversationLog, LogStream } from '@seqline/streams';
import type { MetricsService } from '../metrics/metrics.service.js';
import type { SnapshotService } from '../state/snapshot.service.js';
import { ConversationWriter } from './conversation-writer.service.js';

describe('ConversationWriter with a database that stops answering', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('refuses a write UNAVAILABLE after 10 s rather than holding the conversation, and the next write tries again', async () => {
    let builds = 0;
    // A query on a connection the network dropped silently: never answered, never failed.
    const snapshots = { build: () => (builds++, new Promise<ConversationState>(() => undefined)) } as unknown as SnapshotService;
    const stream = { epoch: 'e1', onEpochChange: () => () => undefined } as unknown as LogStream;
    const writer = new ConversationWriter({} as ConversationLog, stream, snapshots, {} as MetricsService, {} as Settings);
    const post = { type: 'message.post', messageId: 'q1', author: { role: 'user', id: 'u' }, text: 'hello' } as const;

    const first = writer.write('c1', post).catch((error: unknown) => error);
    const second = writer.write('c1', { ...post, messageId: 'q2' }).catch((error: unknown) => error);
    await jest.advanceTimersByTimeAsync(9_900);
    expect(builds).toBe(1);
    await jest.advanceTimersByTimeAsync(100);
    expect(await first).toMatchObject({ code: 'UNAVAILABLE', message: 'the state of c1 could not be read in 10 s (the database or the log is not answering); retry shortly' });
    // The lock is free: the write waiting behind it reads the state again.
    expect(builds).toBe(2);
    await jest.advanceTimersByTimeAsync(10_000);
    expect(await second).toMatchObject({ code: 'UNAVAILABLE' });
  });
});
