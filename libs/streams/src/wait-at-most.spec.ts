import { waitAtMost } from './wait-at-most.js';

describe('waitAtMost', () => {
  it('resolves as soon as the promise settles, fulfilled or rejected', async () => {
    const started = Date.now();
    await waitAtMost(Promise.resolve('done'), 5_000);
    await waitAtMost(Promise.reject(new Error('refused')), 5_000);
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('gives up waiting after the time allowed when the promise never settles', async () => {
    const started = Date.now();
    await waitAtMost(new Promise(() => undefined), 50);
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
  });
});
