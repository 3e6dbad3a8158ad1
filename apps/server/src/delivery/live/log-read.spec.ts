import type { LogEntry } from '@seqline/streams';
import { readLogAfter, type LogReader } from './log-read.js';

/** A log holding `seqs` of one conversation, each following the one before. */
function logOf(seqs: number[]): LogReader {
  return {
    async *readBatches(_conversationId: string, after: number, limit: number) {
      const entries = seqs.filter((seq) => seq > after).slice(0, limit).map((seq, i, all) => ({ seq, prev: i === 0 ? after : all[i - 1]! }) as unknown as LogEntry);
      if (entries.length > 0) yield entries;
    },
  };
}

async function read(log: LogReader, after: number, limit: number, logHead?: number): Promise<number[]> {
  const seqs: number[] = [];
  for await (const batch of readLogAfter(log, 'ep', 'c1', after, limit, 10, logHead)) seqs.push(...batch.map((entry) => entry.seq));
  return seqs;
}

describe('readLogAfter', () => {
  it('refuses as CURSOR_EXPIRED a read that ends before an event the log held when the cursor was judged (expired or discarded since)', async () => {
    // The cursor 1 was judged with 2 and 3 in the log; they are gone by the read.
    await expect(read(logOf([1]), 1, 100, 3)).rejects.toMatchObject({ code: 'CURSOR_EXPIRED', message: 'events after ep-1 are no longer in the log; subscribe without a cursor for a snapshot' });
  });

  it('reads as it is when the log reaches the head it held, when the read stops at its limit, and with no head known', async () => {
    expect(await read(logOf([1, 2, 3, 4]), 1, 100, 3)).toEqual([2, 3, 4]);
    expect(await read(logOf([1, 2, 3, 4]), 1, 2, 4)).toEqual([2, 3]);
    expect(await read(logOf([1]), 1, 100)).toEqual([]);
  });
});
