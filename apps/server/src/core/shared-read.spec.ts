import { SharedRead } from './shared-read.js';

describe('SharedRead', () => {
  it('shares a read while it runs and reuses it for its interval, then reads again', async () => {
    let clock = 0;
    let reads = 0;
    const shared = new SharedRead(async () => ++reads, 1_000, () => clock);
    expect(await Promise.all([shared.get(), shared.get(), shared.get()])).toEqual([1, 1, 1]);
    clock = 1_000;
    expect(await shared.get()).toBe(1);
    clock = 1_001;
    expect(await shared.get()).toBe(2);
    expect(reads).toBe(2);
  });

  it('does not reuse a failed read', async () => {
    let fail = true;
    let reads = 0;
    const shared = new SharedRead(
      async () => {
        reads++;
        if (fail) throw new Error('NATS did not answer');
        return 'ok';
      },
      1_000,
      () => 0,
    );
    await expect(Promise.all([shared.get(), shared.get()])).rejects.toThrow('NATS did not answer');
    fail = false;
    expect(await shared.get()).toBe('ok');
    expect(reads).toBe(2);
  });
});
