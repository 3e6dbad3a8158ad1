import { prevOf, RecentLog } from './recent-log.js';

const record = (prev: number, delta = 'x'): Uint8Array => new TextEncoder().encode(JSON.stringify({ prev, event: { type: 'message.appended', messageId: 'm', part: 1, delta } }));
const at = (ms: number): Date => new Date(1_000_000 + ms);
const seqs = (events: { seq: number }[] | undefined): number[] | undefined => events?.map((event) => event.seq);

/** Two conversations interleaved in one stream, as a busy log is. */
function interleaved(log: RecentLog): void {
  log.add('a', 1, record(0), at(1));
  log.add('b', 2, record(0), at(2));
  log.add('a', 3, record(1), at(3));
  log.add('b', 4, record(2), at(4));
  log.add('a', 5, record(3), at(5));
}

describe('RecentLog', () => {
  it('serves what follows a position of the chain, up to a limit', () => {
    const log = new RecentLog(1 << 20);
    interleaved(log);
    expect(seqs(log.after('a', 0, 10))).toEqual([1, 3, 5]);
    expect(seqs(log.after('a', 1, 10))).toEqual([3, 5]);
    expect(seqs(log.after('a', 1, 1))).toEqual([3]);
    expect(seqs(log.after('b', 2, 10))).toEqual([4]);
    // At the newest event held, nothing: what follows has not reached this instance yet.
    expect(log.after('a', 5, 10)).toEqual([]);
    expect(log.after('a', 5, 10, 5)).toEqual([]);
    // Unless the reader knows of a later event (a JetStream read ran ahead of the live feed): that one is in the log.
    expect(log.after('a', 5, 10, 7)).toBeUndefined();
    expect(seqs(log.after('a', 1, 10, 7))).toEqual([3, 5]);
    expect(log.last('a')).toBe(5);
    expect(log.serves('a', 3)).toBe(true);
    expect(log.serves('a', 5)).toBe(true);
  });

  it('serves nothing for a position the held chain does not follow on from', () => {
    const log = new RecentLog(1 << 20);
    interleaved(log);
    // 2 is an event of another conversation, 4 is nothing of a's, and c is unknown.
    expect(log.after('a', 2, 10)).toBeUndefined();
    expect(log.after('a', 4, 10)).toBeUndefined();
    expect(log.after('c', 0, 10)).toBeUndefined();
    expect(log.serves('a', 2)).toBe(false);
    // Past the newest event, or at an event no longer served, memory cannot tell.
    expect(log.after('a', 6, 10)).toBeUndefined();
    expect(log.serves('a', 6)).toBe(false);
  });

  it('starts a conversation again where its chain breaks, and keeps its event data as it was', () => {
    const log = new RecentLog(1 << 20);
    const data = record(0, 'first');
    log.add('a', 1, data, at(1));
    data.fill(0);
    expect(new TextDecoder().decode(log.after('a', 0, 1)![0]!.data)).toContain('"delta":"first"');
    // Event 7 names 6, which never came: nothing before it can be joined to it.
    log.add('a', 7, record(6), at(7));
    expect(log.after('a', 0, 10)).toBeUndefined();
    expect(log.after('a', 1, 10)).toBeUndefined();
    // Event 1 is no longer served, but its memory counts until it is evicted.
    expect(log.heldBytes).toBe(data.length + record(6).length + 2 * 96);
    expect(seqs(log.after('a', 6, 10))).toEqual([7]);
    // A repeated or older delivery changes nothing.
    log.add('a', 7, record(6), at(7));
    expect(seqs(log.after('a', 6, 10))).toEqual([7]);
  });

  it('holds a copy of an event of its own, not a view of the socket read it came in (a Buffer slice)', () => {
    const log = new RecentLog(1 << 20);
    const rec = record(0);
    const read = Buffer.alloc(65_536);
    read.set(rec, 100);
    log.add('c', 1, read.subarray(100, 100 + rec.length), at(0));
    read.fill(0);
    const held = log.after('c', 0, 1)![0]!.data;
    expect(held.buffer.byteLength).toBe(rec.length);
    expect(Buffer.from(held).equals(Buffer.from(rec))).toBe(true);
  });

  it('gives back the oldest events of the whole stream first when over its bytes', () => {
    const size = record(0).length + 96;
    const log = new RecentLog(size * 3);
    interleaved(log);
    expect(log.heldBytes).toBe(size * 3);
    // 1 and 2 went first: a's chain now starts after 1, b's after 2.
    expect(log.after('a', 0, 10)).toBeUndefined();
    expect(log.after('b', 0, 10)).toBeUndefined();
    expect(seqs(log.after('a', 1, 10))).toEqual([3, 5]);
    expect(seqs(log.after('b', 2, 10))).toEqual([4]);
  });

  it('keeps no evicted event in memory, however many of a conversation went before one it still serves', () => {
    const log = new RecentLog((record(0).length + 96) * 10);
    for (let seq = 1; seq <= 80; seq++) log.add('a', seq, record(seq - 1), at(seq));
    log.add('b', 81, record(0), at(81));
    const held = (log as unknown as { conversations: Map<string, { events: ({ seq: number } | undefined)[] }> }).conversations.get('a')!;
    const inMemory = held.events.filter((event) => event !== undefined).map((event) => event!.seq);
    // Over its bytes, a's oldest went; what it still holds of a is exactly what it serves.
    expect(inMemory.length).toBeLessThan(10);
    expect(inMemory.at(-1)).toBe(80);
    expect(seqs(log.after('a', inMemory[0]! - 1, 100))).toEqual(inMemory);
    expect(log.after('a', inMemory[0]! - 2, 100)).toBeUndefined();
  });

  it('serves nothing older than the log keeps, and nothing at all when cleared', () => {
    let now = at(5).getTime();
    const log = new RecentLog(1 << 20, 1_000, () => now);
    interleaved(log);
    expect(seqs(log.after('b', 0, 10))).toEqual([2, 4]);
    // Events 1 and 2 are past the retention: forgotten as soon as anything is read.
    now = at(3).getTime() + 1_000;
    expect(seqs(log.after('a', 1, 10))).toEqual([3, 5]);
    expect(log.after('b', 0, 10)).toBeUndefined();
    log.clear();
    expect(log.heldBytes).toBe(0);
    expect(log.after('a', 1, 10)).toBeUndefined();
  });

  it('holds nothing when given no bytes', () => {
    const log = new RecentLog(0);
    interleaved(log);
    expect(log.heldBytes).toBe(0);
    expect(log.after('a', 0, 10)).toBeUndefined();
  });
});

describe('prevOf', () => {
  it.each([
    ['the service form', JSON.stringify({ prev: 12345, event: {} }), 12345],
    ['prev 0', JSON.stringify({ prev: 0, event: {} }), 0],
    ['keys in another order', JSON.stringify({ event: {}, prev: 9 }), 9],
    ['spaces', '{ "prev": 8, "event": {} }', 8],
    ['a negative prev', JSON.stringify({ prev: -1, event: {} }), undefined],
    ['no prev', JSON.stringify({ event: {} }), undefined],
    ['not JSON', '{"prev":12', undefined],
  ])('reads %s', (_name, text, prev) => {
    expect(prevOf(new TextEncoder().encode(text))).toBe(prev);
  });
});
