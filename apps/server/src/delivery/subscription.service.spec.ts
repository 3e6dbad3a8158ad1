import { jest } from '@jest/globals';
import { ErrorCode } from '@seqline/protocol';
import type { ConversationLog, LogStream } from '@seqline/streams';
import { pino } from 'pino';
import type { CursorResolver } from './cursor-resolver.js';
import type { LiveFeed } from './live/live-feed.service.js';
import { SubscriptionService } from './subscription.service.js';

function build(resolve: () => Promise<unknown>, learnEpochOf: (stream: { epoch: string }) => void = () => undefined, knownHead: number | null = 7) {
  const stream = { epoch: 'old' };
  const held = { knownHead: () => knownHead ?? undefined, release: jest.fn(), feed: { subscribe: jest.fn() }, snapshots: { snapshot: jest.fn() } };
  const live = { hold: jest.fn(() => held) } as unknown as LiveFeed;
  const cursors = { resolve: jest.fn(resolve), learnEpochOf: jest.fn(async () => learnEpochOf(stream)) } as unknown as CursorResolver;
  const log = { lastSeq: jest.fn(async () => 9) } as unknown as ConversationLog;
  const service = new SubscriptionService(live, cursors, log, stream as unknown as LogStream, pino({ level: 'silent' }));
  return { service, stream, held };
}

describe('SubscriptionService.open', () => {
  it('resumes from a cursor in the current log', async () => {
    const { service, held } = build(async () => ({ kind: 'resume', seq: 5, atHead: false }));
    const opened = await service.open('c1', 'old-5');
    expect(opened.start).toEqual({ mode: 'resume', cursor: 'old-5', head: 'old-7' });
    expect(held.release).not.toHaveBeenCalled();
  });

  it("holds the catch-up to the head the log had when this instance's memory knew none, so events expiring meanwhile are not missed untold", async () => {
    const { service, held } = build(async () => ({ kind: 'resume', seq: 5, atHead: false }), undefined, null);
    const opened = await service.open('c1', 'old-5');
    expect(opened.start).toEqual({ mode: 'resume', cursor: 'old-5', head: 'old-9' });
    const device = { send: () => true, fail: () => undefined };
    opened.attach(device);
    expect(held.feed.subscribe).toHaveBeenCalledWith(device, 5, expect.objectContaining({ logHead: 9 }));
  });

  it("names the log's head when the log showed an event past the head this instance's memory knows (its live feed behind)", async () => {
    const { service, held } = build(async () => ({ kind: 'resume', seq: 5, next: 8 }));
    const opened = await service.open('c1', 'old-5');
    expect(opened.start).toEqual({ mode: 'resume', cursor: 'old-5', head: 'old-9' });
    const device = { send: () => true, fail: () => undefined };
    opened.attach(device);
    expect(held.feed.subscribe).toHaveBeenCalledWith(device, 5, expect.objectContaining({ logHead: 9 }));
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
