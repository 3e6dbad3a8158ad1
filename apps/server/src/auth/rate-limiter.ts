/**
 * What a device's rate is counted by: its user, or the connection itself when it has none
 * (authentication off, admin credentials). Apart, so a user named like a connection shares nothing with it.
 */
export function rateKey(user: string | undefined, connectionId: string): string {
  return user === undefined ? `connection:${connectionId}` : `user:${user}`;
}

/** Keys remembered at most; past that, the least recently used go first. */
const MAX_KEYS = 100_000;

/**
 * Token buckets by key: `rate` per second with bursts up to `burst`. The least recently used keys
 * are forgotten first. Timed by the monotonic clock: a wall clock stepped back (NTP, a restored
 * VM) would leave every bucket short for as long.
 */
export class RateLimiter {
  /** In order of last use: a key used again moves to the end. */
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly rate: number,
    private readonly burst = rate * 2,
  ) {}

  /** Takes one token for `key`; false when the key is over its rate. */
  take(key: string, now = performance.now()): boolean {
    const bucket = this.buckets.get(key) ?? { tokens: this.burst, at: now };
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.rate);
    bucket.at = now;
    // Forgetting only the oldest key: clearing them all would hand every key over its rate a fresh burst.
    this.buckets.delete(key);
    if (this.buckets.size >= MAX_KEYS) this.buckets.delete(this.buckets.keys().next().value!);
    this.buckets.set(key, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }
}
