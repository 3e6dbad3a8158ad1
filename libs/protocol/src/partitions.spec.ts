import { partitionOf, WRITE_PARTITIONS } from './partitions.js';

describe('partitionOf', () => {
  it('is 32-bit FNV-1a of the id modulo the partition count, as documented for raw agents', () => {
    // Reference FNV-1a values: "a" → 0xe40c292c, "foobar" → 0xbf9cf968.
    expect(partitionOf('a')).toBe(0xe40c292c % WRITE_PARTITIONS);
    expect(partitionOf('foobar')).toBe(0xbf9cf968 % WRITE_PARTITIONS);
    expect(partitionOf('demo')).toBe(22);
  });

  it('spreads conversations over every partition', () => {
    const counts = new Array<number>(WRITE_PARTITIONS).fill(0);
    for (let i = 0; i < 3_200; i++) counts[partitionOf(`conversation-${i}`)]!++;
    expect(Math.min(...counts)).toBeGreaterThan(50);
    expect(Math.max(...counts)).toBeLessThan(150);
  });
});
