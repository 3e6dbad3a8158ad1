import { LogThrottle } from './log-throttle.js';

describe('LogThrottle', () => {
  it('lets the first line through, then one per interval with the count of those held back', () => {
    let now = 1_000;
    const throttle = new LogThrottle(5_000, () => now);
    expect(throttle.pass()).toBe(0);
    expect(throttle.pass()).toBeUndefined();
    now += 4_999;
    expect(throttle.pass()).toBeUndefined();
    now += 1;
    expect(throttle.pass()).toBe(2);
    now += 10_000;
    expect(throttle.pass()).toBe(0);
  });
});
