import { Semaphore } from './semaphore.js';

describe('Semaphore', () => {
  it('serves waiters in order, a larger one before smaller ones that came after it', async () => {
    const semaphore = new Semaphore(4);
    const order: string[] = [];
    await semaphore.acquire(3);
    const big = semaphore.acquire(3).then(() => order.push('big'));
    const small = semaphore.acquire(1).then(() => order.push('small'));
    await Promise.resolve();
    // One permit is free, but the larger waiter came first: the smaller one waits behind it.
    expect(order).toEqual([]);
    semaphore.release(3);
    await Promise.all([big, small]);
    expect(order).toEqual(['big', 'small']);
  });

  it('refuses more permits than it has, instead of waiting forever', async () => {
    await expect(new Semaphore(2).acquire(3)).rejects.toThrow(new RangeError('3 permits asked of a semaphore of 2'));
  });
});
