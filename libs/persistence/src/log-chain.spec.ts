import type { LogEvent } from '@seqline/protocol';
import type { LogEntry } from '@seqline/streams';
import { chainStep, walkChain } from './log-chain.js';

const at = '2026-01-01T00:00:00.000Z';
const created = (messageId: string): LogEvent => ({ type: 'message.created', messageId, author: { role: 'user', id: 'u' }, status: 'complete', text: messageId, at });
const entry = (seq: number, prev: number): LogEntry => ({ conversationId: 'c', seq, prev, event: created(`m${seq}`), time: new Date(at) });
const hole = (afterSeq: number, untilSeq: number, reason: 'fork' | 'undecodable' | 'retention') => ({ conversationId: 'c', epoch: 'e', afterSeq, untilSeq, reason });
const seqs = (entries: LogEntry[]) => entries.map((e) => e.seq);

describe('walkChain', () => {
  it('applies an unbroken chain and records no hole', () => {
    const walk = walkChain('c', 'e', 0, [entry(3, 0), entry(7, 3)], [], { strict: true });
    expect([seqs(walk.apply), walk.holes, walk.position, walk.broken]).toEqual([[3, 7], [], 7, false]);
  });

  it('steps over a second event after the same predecessor and goes on from it', () => {
    const walk = walkChain('c', 'e', 0, [entry(3, 0), entry(5, 3), entry(6, 3), entry(9, 6)], [], { strict: true });
    expect(seqs(walk.apply)).toEqual([3, 5, 9]);
    expect(walk.holes).toEqual([hole(5, 6, 'fork')]);
    expect(walk.position).toBe(9);
  });

  it('steps over undecodable events where they lie, a last one included', () => {
    const walk = walkChain('c', 'e', 0, [entry(3, 0), entry(8, 4)], [4, 10], { strict: true });
    expect(seqs(walk.apply)).toEqual([3, 8]);
    expect(walk.holes).toEqual([hole(3, 4, 'undecodable'), hole(8, 10, 'undecodable')]);
    expect(walk.position).toBe(10);
  });

  it('starts from a position: what lies at or before it is already applied', () => {
    const walk = walkChain('c', 'e', 5, [entry(3, 0), entry(5, 3), entry(6, 5)], [4], { strict: true });
    expect([seqs(walk.apply), walk.holes, walk.position]).toEqual([[6], [], 6]);
  });

  it('strict: records events expired before the first as a retention hole, and stops at any other missing predecessor', () => {
    const expired = walkChain('c', 'e', 2, [entry(40, 31), entry(41, 40)], [], { strict: true, firstSeq: 35 });
    expect([seqs(expired.apply), expired.holes, expired.position, expired.broken]).toEqual([[40, 41], [hole(2, 31, 'retention')], 41, false]);
    const missing = walkChain('c', 'e', 2, [entry(40, 36)], [], { strict: true, firstSeq: 35 });
    expect([seqs(missing.apply), missing.position, missing.broken]).toEqual([[], 2, true]);
    const later = walkChain('c', 'e', 2, [entry(3, 2), entry(40, 31)], [], { strict: true, firstSeq: 35 });
    expect([seqs(later.apply), later.position, later.broken]).toEqual([[3], 3, true]);
  });

  it('lenient: takes a log whose start expired as it is', () => {
    const walk = walkChain('c', 'e', 0, [entry(40, 31), entry(41, 40)], [], { strict: false });
    expect([seqs(walk.apply), walk.holes, walk.broken]).toEqual([[40, 41], [], false]);
  });
});

describe('chainStep', () => {
  it('tells a redelivery, the next event, a fork and one ahead of the chain apart', () => {
    // The chain has applied up to 5.
    expect([entry(5, 3), entry(4, 3), entry(8, 5), entry(8, 3), entry(8, 6)].map((e) => chainStep(5, e))).toEqual(['seen', 'seen', 'next', 'fork', 'ahead']);
  });
});
