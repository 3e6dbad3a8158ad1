import { PassThrough } from 'node:stream';
import { writableBatching } from './writable-flow.js';

/** Whether `promise` settles within microtasks only, without the event loop turning. */
async function settlesWithoutEventLoop(promise: Promise<void>): Promise<boolean> {
  let settled = false;
  void promise.then(() => (settled = true));
  for (let i = 0; i < 100; i++) await Promise.resolve();
  return settled;
}

describe('writableBatching', () => {
  it('never answers drained at once, so a catch-up loop always lets the socket write and its close be heard', async () => {
    // Full by the caller's count (frames ws has not handed over yet), while the stream itself asks for no drain.
    const stream = new PassThrough({ highWaterMark: 16 });
    const { flow } = writableBatching(stream, () => 1_000_000, 1_000);
    expect(flow!.full()).toBe(true);
    const waiting = flow!.drained();
    expect(await settlesWithoutEventLoop(waiting)).toBe(false);
    await waiting;

    stream.destroy();
    const gone = flow!.drained();
    expect(await settlesWithoutEventLoop(gone)).toBe(false);
    await gone;
  });

  it('waits for the stream to drain when it asks for it', async () => {
    const stream = new PassThrough({ highWaterMark: 16 });
    const { flow } = writableBatching(stream, () => stream.writableLength, 64);
    stream.write(Buffer.alloc(100));
    expect(stream.writableNeedDrain).toBe(true);
    let drained = false;
    const waiting = flow!.drained().then(() => (drained = true));
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(drained).toBe(false);
    stream.resume();
    await waiting;
    expect(drained).toBe(true);
  });
});
