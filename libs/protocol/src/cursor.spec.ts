import { epochIsBefore, epochOf, formatCursor, parseCursor } from './cursor.js';

describe('cursor', () => {
  it('round-trips epoch and sequence', () => {
    expect(parseCursor(formatCursor({ epoch: 'mwv2oxpk', seq: 1042 }))).toEqual({ epoch: 'mwv2oxpk', seq: 1042 });
    expect(parseCursor('abc-0')).toEqual({ epoch: 'abc', seq: 0 });
  });

  it.each(['', '12', '-5', 'abc-', 'abc--1', 'ABC-1', 'abc-01', 'abc-1.5', 'abc-99999999999999999', 'a b-1'])('rejects %p', (text) => {
    expect(parseCursor(text)).toBeUndefined();
  });

  it('derives the epoch from the log creation time', () => {
    expect(epochOf(new Date(1_795_547_618_973))).toBe((1_795_547_618_973).toString(36));
  });

  it('orders epochs by the creation time of their logs, not as text', () => {
    // 'zz' (1,295 ms) sorts after '100' (1,296 ms) as text.
    expect([epochIsBefore('zz', '100'), epochIsBefore('100', 'zz'), epochIsBefore('100', '100')]).toEqual([true, false, false]);
    const older = epochOf(new Date(1_795_547_618_973));
    const newer = epochOf(new Date(1_795_547_618_974));
    expect([epochIsBefore(older, newer), epochIsBefore(newer, older)]).toEqual([true, false]);
  });
});
