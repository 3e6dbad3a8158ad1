import { jest } from '@jest/globals';
import { loadEnv, settingsFrom } from '@seqline/config';
import type { ConversationState } from '@seqline/persistence';
import type { ConversationLog, LogStream } from '@seqline/streams';
import type { MetricsService } from '../metrics/metrics.service.js';
import type { SnapshotService } from '../state/snapshot.service.js';
import { stateBytes } from './conversation-state-cache.js';
import { ConversationWriter } from './conversation-writer.service.js';

const post = (messageId: string) => ({ type: 'message.post', messageId, author: { role: 'user', id: 'u' }, text: 'hello' }) as const;

/** A writer over a log that takes every event, whose state builds (Postgres, then the log) answer only when told. */
function writerWithSlowBuilds() {
  const builds: ((state: ConversationState) => void)[] = [];
  const snapshots = { build: () => new Promise<ConversationState>((resolve) => builds.push(resolve)) } as unknown as SnapshotService;
  const stream = { epoch: 'e1', onEpochChange: () => () => undefined } as unknown as LogStream;
  let seq = 0;
  const log = { append: async () => ({ seq: ++seq, duplicate: false }) } as unknown as ConversationLog;
  const metrics = { eventsWritten: { inc: () => undefined } } as unknown as MetricsService;
  const settings = settingsFrom(loadEnv({ DATABASE_URL: 'postgresql://localhost/x', NATS_URL: 'nats://localhost:4222' }));
  return { writer: new ConversationWriter(log, stream, snapshots, metrics, settings), builds };
}

/** A first write whose state build never answers: refused `UNAVAILABLE` once 10 s have passed. */
async function expectRefusedAfter10s(writer: ConversationWriter): Promise<void> {
  const first = writer.write('c1', post('q1')).catch((error: unknown) => error);
  await jest.advanceTimersByTimeAsync(10_000);
  expect(await first).toMatchObject({ code: 'UNAVAILABLE' });
}

describe('ConversationWriter with a database that stops answering', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('refuses a write UNAVAILABLE after 10 s rather than holding the conversation for good, and starts no second read meanwhile', async () => {
    const { writer, builds } = writerWithSlowBuilds();
    const first = writer.write('c1', post('q1')).catch((error: unknown) => error);
    const second = writer.write('c1', post('q2')).catch((error: unknown) => error);
    await jest.advanceTimersByTimeAsync(9_900);
    expect(builds).toHaveLength(1);
    await jest.advanceTimersByTimeAsync(100);
    expect(await first).toMatchObject({ code: 'UNAVAILABLE', message: 'the state of c1 could not be read in 10 s (the database or the log is not answering); retry shortly' });
    // The lock is free: the write behind it waits for the same read, not a new one holding another connection.
    await jest.advanceTimersByTimeAsync(10_000);
    expect(await second).toMatchObject({ code: 'UNAVAILABLE' });
    expect(builds).toHaveLength(1);
  });

  it('keeps the state of a read that ends after every writer gave up, so the next write needs none', async () => {
    const { writer, builds } = writerWithSlowBuilds();
    await expectRefusedAfter10s(writer);
    builds[0]!({ conversationId: 'c1', seq: 0, messages: new Map() });
    await jest.advanceTimersByTimeAsync(0);
    expect(await writer.write('c1', post('q2'))).toMatchObject({ cursor: 'e1-1', duplicate: false });
    expect(builds).toHaveLength(1);
  });

  it('starts a build of its own once the one under way is 30 s old: one on a connection the network cut off does not hold the conversation once the network is back', async () => {
    const { writer, builds } = writerWithSlowBuilds();
    await expectRefusedAfter10s(writer);
    await jest.advanceTimersByTimeAsync(21_000);
    const later = writer.write('c1', post('q2'));
    await jest.advanceTimersByTimeAsync(0);
    expect(builds).toHaveLength(2);
    builds[1]!({ conversationId: 'c1', seq: 0, messages: new Map() });
    expect(await later).toMatchObject({ cursor: 'e1-1', duplicate: false });
  });
});

describe('ConversationWriter when the log takes a write for a repeat', () => {
  it('does not report a write it cannot find in the log as done: the key was another event\'s', async () => {
    const empty = (): ConversationState => ({ conversationId: 'c1', seq: 4, messages: new Map() });
    const snapshots = { build: async () => empty(), catchUp: async () => undefined } as unknown as SnapshotService;
    const stream = { epoch: 'e1', onEpochChange: () => () => undefined } as unknown as LogStream;
    // JetStream answers "duplicate" (an event of another key in its window took this one), and catching up finds nothing new.
    const log = { append: async () => ({ seq: 5, duplicate: true }) } as unknown as ConversationLog;
    const metrics = { eventsWritten: { inc: () => undefined }, statesRebuilt: { inc: () => undefined } } as unknown as MetricsService;
    const settings = settingsFrom(loadEnv({ DATABASE_URL: 'postgresql://localhost/x', NATS_URL: 'nats://localhost:4222' }));
    const writer = new ConversationWriter(log, stream, snapshots, metrics, settings);
    await expect(writer.write('c1', post('q1'))).rejects.toMatchObject({ code: 'UNAVAILABLE', message: 'the log took this write for a repeat of another; retry shortly' });
  });
});

describe('ConversationWriter counting its cached states', () => {
  it('counts a value set again and again once, and a text block with the text it repeats, as a recount of the state would', async () => {
    const snapshots = { build: async (): Promise<ConversationState> => ({ conversationId: 'c1', seq: 0, messages: new Map() }) } as unknown as SnapshotService;
    const stream = { epoch: 'e1', onEpochChange: () => () => undefined } as unknown as LogStream;
    let seq = 0;
    const log = { append: async () => ({ seq: ++seq, duplicate: false }) } as unknown as ConversationLog;
    const metrics = { eventsWritten: { inc: () => undefined } } as unknown as MetricsService;
    const settings = settingsFrom(loadEnv({ DATABASE_URL: 'postgresql://localhost/x', NATS_URL: 'nats://localhost:4222' }));
    const writer = new ConversationWriter(log, stream, snapshots, metrics, settings);
    await writer.write('c1', { type: 'message.start', messageId: 'a1', agentId: 'bot', text: '' });
    let part = 0;
    for (let i = 0; i < 100; i++) await writer.write('c1', { type: 'message.append', messageId: 'a1', part: ++part, delta: JSON.stringify({ progress: i, note: 'x'.repeat(1_000) }), block: { type: 'data', id: 'status', name: 'status' } });
    await writer.write('c1', { type: 'message.append', messageId: 'a1', part: ++part, delta: 'plain before blocks of text' });
    await writer.write('c1', { type: 'message.append', messageId: 'a1', part: ++part, delta: 'Hello', block: { type: 'text', id: 't1' } });
    await writer.write('c1', { type: 'message.append', messageId: 'a1', part: part + 1, delta: ', and more' });
    const cache = (writer as unknown as { states: { bytes: number; get(id: string): ConversationState | undefined } }).states;
    expect(cache.bytes).toBe(stateBytes(cache.get('c1')!));
  });
});

describe('ConversationWriter refusing a fenced producer', () => {
  it('refuses a producer a takeover it already knows of fenced, at once, without reading the conversation again each time', async () => {
    let builds = 0;
    const snapshots = {
      build: async (): Promise<ConversationState> => (builds++, { conversationId: 'c1', seq: 0, messages: new Map() }),
      catchUp: async () => undefined,
    } as unknown as SnapshotService;
    const stream = { epoch: 'e1', nc: {}, onEpochChange: () => () => undefined } as unknown as LogStream;
    let seq = 0;
    const log = { append: async () => ({ seq: ++seq, duplicate: false }) } as unknown as ConversationLog;
    const metrics = { eventsWritten: { inc: () => undefined }, statesRebuilt: { inc: () => undefined } } as unknown as MetricsService;
    const settings = settingsFrom(loadEnv({ DATABASE_URL: 'postgresql://localhost/x', NATS_URL: 'nats://localhost:4222' }));
    const writer = new ConversationWriter(log, stream, snapshots, metrics, settings);
    await writer.write('c1', { type: 'message.start', messageId: 'a1', agentId: 'bot', text: '', producerId: 'p1' });
    await writer.write('c1', { type: 'message.start', messageId: 'a1', agentId: 'bot', text: '', producerId: 'p2' });
    for (let part = 1; part <= 5; part++) {
      await expect(writer.write('c1', { type: 'message.append', messageId: 'a1', part, delta: 'old', epoch: 1 })).rejects.toMatchObject({ code: 'FENCED' });
    }
    // Nor one that names no epoch (a raw agent), nor the start of the producer taken over, nor a start naming none.
    for (let part = 1; part <= 5; part++) {
      await expect(writer.write('c1', { type: 'message.append', messageId: 'a1', part, delta: 'old' })).rejects.toMatchObject({ code: 'FENCED' });
    }
    await expect(writer.write('c1', { type: 'message.complete', messageId: 'a1' })).rejects.toMatchObject({ code: 'FENCED' });
    await expect(writer.write('c1', { type: 'message.start', messageId: 'a1', agentId: 'bot', text: '', producerId: 'p1' })).rejects.toMatchObject({ code: 'FENCED' });
    await expect(writer.write('c1', { type: 'message.start', messageId: 'a1', agentId: 'bot', text: '' })).rejects.toMatchObject({ code: 'FENCED' });
    expect(builds).toBe(1);
  });
});
