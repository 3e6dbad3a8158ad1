import { RateLimiter } from './rate-limiter.js';

describe('RateLimiter', () => {
  it('allows a burst, then the rate', () => {
    const limiter = new RateLimiter(5);
    const taken = Array.from({ length: 12 }, () => limiter.take('ana', 0));
    expect(taken.filter(Boolean)).toHaveLength(10);
    expect(limiter.take('ana', 199)).toBe(false);
    expect(limiter.take('ana', 200)).toBe(true);
  });

  it('keeps a key over its rate limited however many other keys come and go', () => {
    const limiter = new RateLimiter(1);
    while (limiter.take('flooder', 0));
    // Enough other keys to pass the limit of keys remembered, with the flooder still active among them.
    for (let i = 0; i < 150_000; i++) {
      limiter.take(`other-${i}`, 0);
      if (i % 10_000 === 0) expect(limiter.take('flooder', 0)).toBe(false);
    }
    expect(limiter.take('flooder', 0)).toBe(false);
  });
});
