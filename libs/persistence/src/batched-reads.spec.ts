import { jest } from '@jest/globals';
import { BatchedReads } from './batched-reads.js';

/** A read that resolves only when the test says so, recording the keys of each statement. */
function controlledRead() {
  const statements: string[][] = [];
  const pending: { resolve(): void; reject(error: Error): void }[] = [];
  const read = (keys: string[]): Promise<Map<string, string>> => {
    statements.push(keys);
    return new Promise((resolve, reject) => {
      pending.push({ resolve: () => resolve(new Map(keys.filter((key) => !key.startsWith('unknown')).map((key) => [key, `row of ${key}`]))), reject });
    });
  };
  return { statements, pending, read };
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('BatchedReads', () => {
  it('reads the keys asked for in one turn with one statement, and answers each', async () => {
    const { statements, pending, read } = controlledRead();
    const reads = new BatchedReads(read, 'none', { maxBatch: 100, maxInFlight: 2 });
    const answers = Promise.all(['a', 'b', 'a', 'unknown-c'].map((key) => reads.load(key)));
    await turn();
    expect(statements).toEqual([['a', 'b', 'unknown-c']]);
    pending[0]!.resolve();
    await expect(answers).resolves.toEqual(['row of a', 'row of b', 'row of a', 'none']);
  });

  it('sends keys asked for while statements run together in the next one, never more than maxInFlight at once', async () => {
    const { statements, pending, read } = controlledRead();
    const reads = new BatchedReads(read, 'none', { maxBatch: 100, maxInFlight: 1 });
    const first = reads.load('a');
    await turn();
    const later = Promise.all(['b', 'c', 'd'].map((key) => reads.load(key)));
    await turn();
    expect(statements).toEqual([['a']]);
    pending[0]!.resolve();
    await expect(first).resolves.toBe('row of a');
    await turn();
    expect(statements).toEqual([['a'], ['b', 'c', 'd']]);
    pending[1]!.resolve();
    await expect(later).resolves.toEqual(['row of b', 'row of c', 'row of d']);
  });

  it('splits a burst into statements of at most maxBatch keys', async () => {
    const { statements, pending, read } = controlledRead();
    const reads = new BatchedReads(read, 'none', { maxBatch: 2, maxInFlight: 2 });
    const answers = Promise.all(['a', 'b', 'c', 'd', 'e'].map((key) => reads.load(key)));
    await turn();
    expect(statements).toEqual([['a', 'b'], ['c', 'd']]);
    pending[0]!.resolve();
    pending[1]!.resolve();
    await turn();
    await turn();
    expect(statements).toEqual([['a', 'b'], ['c', 'd'], ['e']]);
    pending[2]!.resolve();
    await expect(answers).resolves.toEqual(['row of a', 'row of b', 'row of c', 'row of d', 'row of e']);
  });

  it('reads a key asked for while its statement runs again, so an answer never predates the request', async () => {
    const { statements, pending, read } = controlledRead();
    const reads = new BatchedReads(read, 'none', { maxBatch: 100, maxInFlight: 2 });
    const first = reads.load('a');
    await turn();
    const second = reads.load('a');
    await turn();
    expect(statements).toEqual([['a'], ['a']]);
    pending[0]!.resolve();
    pending[1]!.resolve();
    await expect(Promise.all([first, second])).resolves.toEqual(['row of a', 'row of a']);
  });

  it('fails only the keys of a statement that failed, and goes on reading', async () => {
    const { statements, pending, read } = controlledRead();
    const reads = new BatchedReads(read, 'none', { maxBatch: 1, maxInFlight: 2 });
    const a = reads.load('a');
    const b = reads.load('b');
    await turn();
    pending[0]!.reject(new Error('connection closed'));
    pending[1]!.resolve();
    await expect(a).rejects.toThrow('connection closed');
    await expect(b).resolves.toBe('row of b');
    const c = reads.load('c');
    await turn();
    pending[2]!.resolve();
    await expect(c).resolves.toBe('row of c');
    expect(statements).toEqual([['a'], ['b'], ['c']]);
  });

  it('stops counting a statement that hangs, so the reads after it do not queue behind it for as long as it hangs', async () => {
    jest.useFakeTimers();
    try {
      const { statements, pending, read } = controlledRead();
      const reads = new BatchedReads(read, 'none', { maxBatch: 100, maxInFlight: 1, stuckAfterMs: 30_000 });
      void reads.load('a');
      await jest.advanceTimersByTimeAsync(0);
      const later = reads.load('b');
      await jest.advanceTimersByTimeAsync(29_000);
      expect(statements).toEqual([['a']]);
      await jest.advanceTimersByTimeAsync(2_000);
      expect(statements).toEqual([['a'], ['b']]);
      pending[1]!.resolve();
      await expect(later).resolves.toBe('row of b');
      // The hung one settling at last frees no second slot: still one statement at a time.
      pending[0]!.resolve();
      await jest.advanceTimersByTimeAsync(0);
      void reads.load('c');
      await jest.advanceTimersByTimeAsync(0);
      void reads.load('d');
      await jest.advanceTimersByTimeAsync(0);
      // d waits behind c: a second slot would have sent it at once.
      expect(statements).toEqual([['a'], ['b'], ['c']]);
    } finally {
      jest.useRealTimers();
    }
  });
});

