import type { LogEntry } from '@seqline/streams';
import { ConversationFeed, type FeedLog } from './conversation-feed.js';
import { FeedEvent } from './feed-event.js';

const EPOCH = 'e';

/** A conversation's log in memory: events at the given sequences, each naming the previous one. */
class MemoryLog implements FeedLog {
  readonly epoch = EPOCH;
  readonly entries: LogEntry[] = [];
  reads = 0;
  /** Runs while a read is in flight, to interleave live events with catch-up. */
  duringRead?: () => void;

  write(seq: number): LogEntry {
    const prev = this.entries.at(-1)?.seq ?? 0;
    const entry: LogEntry = { conversationId: 'c', seq, prev, event: { type: 'message.appended', messageId: 'm', part: this.entries.length + 1, delta: `d${seq}`, at: '' }, time: new Date() };
    this.entries.push(entry);
    return entry;
  }

  async *readBatches(_conversationId: string, after: number, limit: number, batchSize: number, logHead?: number): AsyncGenerator<LogEntry[]> {
    this.reads++;
    const found = this.entries.filter((entry) => entry.seq > after).slice(0, limit);
    await Promise.resolve();
    this.duringRead?.();
    this.duringRead = undefined;
    for (let i = 0; i < found.length; i += batchSize) yield found.slice(i, i + batchSize);
    // As the live feed's read of JetStream does (log-read.ts).
    if (logHead !== undefined && found.length < limit && (found.at(-1)?.seq ?? after) < logHead) throw Object.assign(new Error('expired'), { code: 'CURSOR_EXPIRED' });
  }
}

function sink() {
  const received: number[] = [];
  const failures: unknown[] = [];
  return { received, failures, send: (event: FeedEvent) => (received.push(event.seq), true), fail: (error: unknown) => failures.push(error) };
}

const live = (feed: ConversationFeed, entry: LogEntry): void => feed.accept(new FeedEvent(entry, EPOCH, 10));
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

describe('ConversationFeed', () => {
  it("fails a subscriber whose catch-up finds the log ending before the head it held when the cursor was judged, where it was taken for the head and the events between missed untold", async () => {
    const log = new MemoryLog();
    const feed = new ConversationFeed('c', log, { windowEvents: 100, windowBytes: 1 << 20, readBatch: 100 });
    for (const seq of [1, 2, 3]) log.write(seq);
    // 2 and 3 expire between the cursor's check and the read.
    log.entries.length = 1;
    const device = sink();
    feed.subscribe(device, 1, { logHead: 3 });
    await settle();
    expect({ received: device.received, failures: device.failures, knownHead: feed.knownHead }).toEqual({ received: [], failures: [expect.objectContaining({ code: 'CURSOR_EXPIRED' })], knownHead: undefined });
  });

  it('fails a subscriber that attaches after the feed failed (the log was recreated meanwhile), once subscribe has returned', async () => {
    const log = new MemoryLog();
    const feed = new ConversationFeed('c', log, { windowEvents: 100, windowBytes: 1 << 20, readBatch: 100 });
    for (const seq of [3, 5]) live(feed, log.write(seq));
    const early = sink();
    feed.subscribe(early, 5);
    const error = new Error('the log was recreated');
    feed.failAll(error);
    const late = sink();
    let released = 0;
    const subscription = feed.subscribe(late, 3, { release: () => released++ });
    expect([subscription.closed, late.failures, released]).toEqual([true, [], 1]);
    await settle();
    expect({ early: early.failures, late: late.failures, received: late.received, subscribers: feed.subscriberCount }).toEqual({ early: [error], late: [error], received: [], subscribers: 0 });
  });

  it('hands an event on to the other subscribers when one sink throws on it, and ends only that one', () => {
    const log = new MemoryLog();
    const feed = new ConversationFeed('c', log, { windowEvents: 100, windowBytes: 1 << 20, readBatch: 100 });
    live(feed, log.write(3));
    const throwing = { ...sink(), send: () => { throw new TypeError("Cannot read properties of undefined (reading 'length')"); } };
    const device = sink();
    feed.subscribe(throwing, 3);
    feed.subscribe(device, 3);
    live(feed, log.write(5));
    expect(device.received).toEqual([5]);
    expect(throwing.failures).toEqual([expect.objectContaining({ code: 'UNAVAILABLE', message: "event 5 of c could not be delivered (Cannot read properties of undefined (reading 'length')); subscribe again from your cursor" })]);
    expect(feed.subscriberCount).toBe(1);
  });

  it('ends a subscriber whose sink throws on an event sent from the window while it subscribes, leaving it among no subscribers', async () => {
    const log = new MemoryLog();
    const feed = new ConversationFeed('c', log, { windowEvents: 100, windowBytes: 1 << 20, readBatch: 100 });
    for (const seq of [3, 5]) live(feed, log.write(seq));
    const throwing = { ...sink(), send: () => { throw new TypeError('not an event this sink can apply'); } };
    const subscription = feed.subscribe(throwing, 3);
    expect({ closed: subscription.closed, subscribers: feed.subscriberCount, failures: throwing.failures }).toEqual({ closed: true, subscribers: 0, failures: [] });
    await settle();
    expect(throwing.failures).toEqual([expect.objectContaining({ code: 'UNAVAILABLE', message: 'the events of c after 3 could not be delivered (not an event this sink can apply); subscribe again from your cursor' })]);
  });

  it('resumes a subscriber inside the window from memory, in the same tick, then live', () => {
    const log = new MemoryLog();
    const feed = new ConversationFeed('c', log, { windowEvents: 100, windowBytes: 1 << 20, readBatch: 100 });
    for (const seq of [3, 5, 9]) live(feed, log.write(seq));
    expect(feed.covers(3)).toBe(true);
    const device = sink();
    feed.subscribe(device, 3);
    expect(device.received).toEqual([5, 9]);
    live(feed, log.write(12));
    expect(device.received).toEqual([5, 9, 12]);
    expect(log.reads).toBe(0);
  });

  it('reads the log for a subscriber behind the window, with live events arriving mid-read, and joins without gap or duplicate', async () => {
    const log = new MemoryLog();
    const feed = new ConversationFeed('c', log, { windowEvents: 2, windowBytes: 1 << 20, readBatch: 100 });
    for (const seq of [1, 2, 3, 4, 5, 6]) live(feed, log.write(seq));
    expect(feed.covers(2)).toBe(false);
    const device = sink();
    log.duringRead = () => {
      live(feed, log.write(7));
      live(feed, log.write(8));
    };
    feed.subscribe(device, 2);
    await settle();
    live(feed, log.write(9));
    expect(device.received).toEqual([3, 4, 5, 6, 7, 8, 9]);
    expect(device.failures).toEqual([]);
  });

  it('learns the head from an exhausted read when nothing has arrived live yet', async () => {
    const log = new MemoryLog();
    for (const seq of [1, 4]) log.write(seq);
    const feed = new ConversationFeed('c', log, { windowEvents: 10, windowBytes: 1 << 20, readBatch: 100 });
    const device = sink();
    feed.subscribe(device, 0);
    await settle();
    expect(feed.knownHead).toBe(4);
    live(feed, log.write(6));
    expect(device.received).toEqual([1, 4, 6]);
  });

  it('keeps what an exhausted read sent as its window, so later subscribers need no read and share the same events', async () => {
    const log = new MemoryLog();
    for (const seq of [1, 2, 3, 4, 5]) log.write(seq);
    const feed = new ConversationFeed('c', log, { windowEvents: 3, windowBytes: 1 << 20, readBatch: 100 });
    const events = (): { seen: FeedEvent[]; send: (event: FeedEvent) => boolean; fail: () => void } => {
      const seen: FeedEvent[] = [];
      return { seen, send: (event) => (seen.push(event), true), fail: () => undefined };
    };
    const first = events();
    feed.subscribe(first, 0);
    await settle();
    expect(first.seen.map((event) => event.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(log.reads).toBe(1);
    // The newest three, within the window's bound: a subscriber at 2 is served from memory, at once.
    expect([feed.covers(1), feed.covers(2), feed.covers(5)]).toEqual([false, true, true]);
    const second = events();
    feed.subscribe(second, 2);
    expect(second.seen.map((event) => event.seq)).toEqual([3, 4, 5]);
    expect(log.reads).toBe(1);
    // The very same events, so the same frame bytes: decoded and serialised once.
    expect(second.seen.every((event, i) => event === first.seen[i + 2])).toBe(true);
    expect(second.seen[0]!.wsFrame).toBe(first.seen[2]!.wsFrame);
    live(feed, log.write(6));
    expect(first.seen.at(-1)!.seq).toBe(6);
    expect(second.seen.at(-1)!.seq).toBe(6);
  });

  it('keeps the newest window of a long read, letting older events go as the read goes on', async () => {
    const log = new MemoryLog();
    for (let seq = 1; seq <= 50; seq++) log.write(seq);
    const feed = new ConversationFeed('c', log, { windowEvents: 3, windowBytes: 1 << 20, readBatch: 100 });
    const device = sink();
    feed.subscribe(device, 0);
    await settle();
    expect(device.received).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect([feed.covers(46), feed.covers(47), feed.covers(50)]).toEqual([false, true, true]);
    const late = sink();
    feed.subscribe(late, 47);
    expect(late.received).toEqual([48, 49, 50]);
    expect(log.reads).toBe(1);
  });

  it('keeps no window from a read that live events overtook', async () => {
    const log = new MemoryLog();
    for (const seq of [1, 2, 3]) log.write(seq);
    const feed = new ConversationFeed('c', log, { windowEvents: 10, windowBytes: 1 << 20, readBatch: 100 });
    log.duringRead = () => live(feed, log.write(4));
    const device = sink();
    feed.subscribe(device, 0);
    await settle();
    expect(device.received).toEqual([1, 2, 3, 4]);
    // The window is what arrived live (after 3), not the read.
    expect([feed.covers(2), feed.covers(3), feed.covers(4)]).toEqual([false, true, true]);
  });

  it('takes a position the caller saw at the log head as the head, without reading the log', () => {
    const log = new MemoryLog();
    for (const seq of [1, 4]) log.write(seq);
    const feed = new ConversationFeed('c', log, { windowEvents: 10, windowBytes: 1 << 20, readBatch: 100 });
    const device = sink();
    feed.subscribe(device, 4, { atHead: true });
    live(feed, log.write(6));
    expect(device.received).toEqual([6]);
    expect(log.reads).toBe(0);
  });

  it('repairs from the log when a live event does not follow the subscriber', async () => {
    const log = new MemoryLog();
    const feed = new ConversationFeed('c', log, { windowEvents: 10, windowBytes: 1 << 20, readBatch: 100 });
    live(feed, log.write(1));
    const device = sink();
    feed.subscribe(device, 1);
    log.write(2); // never seen live
    live(feed, log.write(3));
    await settle();
    expect(device.received).toEqual([2, 3]);
  });

  it('fails a subscriber with CURSOR_EXPIRED when the log no longer follows its position', async () => {
    const log = new MemoryLog();
    log.write(1);
    log.write(2);
    log.entries.shift(); // retention took event 1; event 2 still names it
    const feed = new ConversationFeed('c', log, { windowEvents: 10, windowBytes: 1 << 20, readBatch: 100 });
    const device = sink();
    const release = feed.hold();
    feed.subscribe(device, 0, { release });
    await settle();
    expect(device.failures).toEqual([expect.objectContaining({ code: 'CURSOR_EXPIRED' })]);
    expect(feed.subscriberCount).toBe(0);
    expect(feed.idle).toBe(true);
  });

  it('leaves nothing behind when a subscription closes during its catch-up', async () => {
    const log = new MemoryLog();
    for (const seq of [1, 2, 3]) log.write(seq);
    const feed = new ConversationFeed('c', log, { windowEvents: 10, windowBytes: 1 << 20, readBatch: 100 });
    const device = sink();
    const subscription = feed.subscribe(device, 0, { release: feed.hold() });
    subscription.close();
    await settle();
    expect(device.received).toEqual([]);
    expect(feed.subscriberCount).toBe(0);
    expect(feed.idle).toBe(true);
  });

  it('keeps the window within its bound and forgets old events', () => {
    const log = new MemoryLog();
    const feed = new ConversationFeed('c', log, { windowEvents: 16, windowBytes: 1 << 20, readBatch: 100 });
    for (let seq = 1; seq <= 100; seq++) live(feed, log.write(seq));
    expect(feed.covers(100 - 16)).toBe(true);
    expect(feed.covers(100 - 17)).toBe(false);
    feed.forgetBefore(Date.now() + 1);
    expect(feed.covers(99)).toBe(false);
    expect(feed.covers(100)).toBe(true);
  });

  it('catches a full sink up at its own pace: it waits for room, then ends exact and live', async () => {
    const log = new MemoryLog();
    for (let seq = 1; seq <= 1000; seq++) log.write(seq);
    const feed = new ConversationFeed('c', log, { windowEvents: 100, windowBytes: 1 << 20, readBatch: 400 });
    const device = sink();
    // The sink takes 100 events, then is full until the test lets it drain.
    let unsent = 0;
    let drain: (() => void) | undefined;
    const slow = {
      ...device,
      send: (event: FeedEvent) => (unsent++, device.send(event)),
      flow: { full: () => unsent >= 100, drained: () => new Promise<void>((resolve) => (drain = resolve)) },
    };
    feed.subscribe(slow, 0);
    await settle();
    expect(device.received).toHaveLength(100);
    for (let seq = 1001; seq <= 1010; seq++) live(feed, log.write(seq));
    // Live events do not jump the queue while the device is still catching up.
    expect(device.received).toHaveLength(100);
    while (device.received.length < 1010) {
      unsent = 0;
      drain!();
      await settle();
    }
    live(feed, log.write(1011));
    expect(device.received).toEqual(Array.from({ length: 1011 }, (_, i) => i + 1));
    expect(device.failures).toEqual([]);
  });

  it('goes on catching up a sink that says it is full and at once that it has drained, instead of spinning', async () => {
    const log = new MemoryLog();
    const feed = new ConversationFeed('c', log, { windowEvents: 100, windowBytes: 1 << 20, readBatch: 100 });
    for (const seq of [1, 2, 3, 4, 5]) live(feed, log.write(seq));
    const device = sink();
    const stubborn = { ...device, flow: { full: () => true, drained: () => Promise.resolve() } };
    feed.subscribe(stubborn, 1);
    await settle();
    expect(device.received).toEqual([2, 3, 4, 5]);
    live(feed, log.write(6));
    expect(device.received).toEqual([2, 3, 4, 5, 6]);
    expect(device.failures).toEqual([]);
  });

  it('fails with CURSOR_EXPIRED, not a read loop, when the log holds nothing after the position but the window starts later', async () => {
    const log = new MemoryLog();
    for (let seq = 1; seq <= 10; seq++) log.write(seq);
    const feed = new ConversationFeed('c', log, { windowEvents: 2, windowBytes: 1 << 20, readBatch: 100 });
    live(feed, log.write(11));
    live(feed, log.write(12));
    log.entries.length = 0; // a size cap dropped everything, the window's events too
    const device = sink();
    feed.subscribe(device, 3);
    await settle();
    expect(device.failures).toEqual([expect.objectContaining({ code: 'CURSOR_EXPIRED' })]);
    expect(log.reads).toBe(1);
  });
});
