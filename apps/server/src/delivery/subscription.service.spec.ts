import { jest } from '@jest/globals';
import { ErrorCode } from '@seqline/protocol';
import type { ConversationLog, LogStream } from '@seqline/streams';
import { pino } from 'pino';
import type { CursorResolver } from './cursor-resolver.js';
import type { LiveFeed } from './live/live-feed.service.js';
import { SubscriptionService } from './subscription.service.js';

function build(resolve: () => Promise<unknown>, learnEpochOf: (stream: { epoch: string }) => void = () => undefined) {
  const stream = { epoch: 'old' };
  const held = { knownHead: () => 7, release: jest.fn(), feed: { subscribe: jest.fn() }, snapshots: { snapshot: jest.fn() } };
  const live = { hold: jest.fn(() => held) } as unknown as LiveFeed;
  const cursors = { resolve: jest.fn(resolve), learnEpochOf: jest.fn(async () => learnEpochOf(stream)) } as unknown as CursorResolver;
  const service = new SubscriptionService(live, cursors, {} as ConversationLog, stream as unknown as LogStream, pino({ level: 'silent' }));
  return { service, stream, held };
}

describe('SubscriptionService.open', () => {
  it('resumes from a cursor in the current log', async () => {
    const { service, held } = build(async () => ({ kind: 'resume', seq: 5, atHead: false }));
    const opened = await service.open('c1', 'old-5');
    expect(opened.start).toEqual({ mode: 'resume', cursor: 'old-5', head: 'old-7' });
    expect(held.release).not.toHaveBeenCalled();
  });

  it('refuses with CURSOR_EXPIRED when the log is recreated while it opens, and lets the held feed go', async () => {
    const state = build(async () => {
      state.stream.epoch = 'new';
      return { kind: 'resume', seq: 5, atHead: false };
    });
    await expect(state.service.open('c1', 'old-5')).rejects.toMatchObject({ code: ErrorCode.CursorExpired, message: 'the log was recreated (epoch old is now new); subscribe without a cursor for a snapshot' });
    expect(state.held.release).toHaveBeenCalledTimes(1);
    expect(state.held.feed.subscribe).not.toHaveBeenCalled();
  });

  it('resumes a cursor of a log recreated without this instance knowing yet, the epoch read before the feed is held', async () => {
    const { service, held } = build(
      async () => ({ kind: 'resume', seq: 5, atHead: false }),
      (stream) => (stream.epoch = 'new'),
    );
    const opened = await service.open('c1', 'new-5');
    expect(opened.start).toEqual({ mode: 'resume', cursor: 'new-5', head: 'new-7' });
    expect(held.release).not.toHaveBeenCalled();
  });

  it('turns a failed log read into UNAVAILABLE, and lets the held feed go', async () => {
    const { service, held } = build(async () => {
      throw new Error('TIMEOUT');
    });
    await expect(service.open('c1', 'old-5')).rejects.toMatchObject({ code: ErrorCode.Unavailable, message: 'the log cannot be read right now; retry shortly' });
    expect(held.release).toHaveBeenCalledTimes(1);
  });
});
