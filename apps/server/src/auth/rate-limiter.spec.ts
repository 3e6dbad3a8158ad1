import { jest } from '@jest/globals';
import { RateLimiter } from './rate-limiter.js';

describe('RateLimiter', () => {
  it('allows a burst, then the rate', () => {
    const limiter = new RateLimiter(5);
    const taken = Array.from({ length: 12 }, () => limiter.take('ana', 0));
    expect(taken.filter(Boolean)).toHaveLength(10);
    expect(limiter.take('ana', 199)).toBe(false);
    expect(limiter.take('ana', 200)).toBe(true);
  });

  it('is not held back by a wall clock stepped back (NTP, a restored VM)', async () => {
    const limiter = new RateLimiter(5, 5);
    const wall = jest.spyOn(Date, 'now').mockReturnValue(1_800_000_000_000);
    try {
      while (limiter.take('ana'));
      wall.mockReturnValue(1_800_000_000_000 - 3_600_000); // an hour back
      await new Promise((resolve) => setTimeout(resolve, 250));
      // A quarter of a second at 5 per second gives one token back, whatever the wall clock says.
      expect(limiter.take('ana')).toBe(true);
    } finally {
      wall.mockRestore();
    }
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
