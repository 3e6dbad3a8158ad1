import type { KV } from '@nats-io/kv';

/**
 * Of a lease's time to live after a renewal, how much its holder counts on: the rest is for clocks
 * and NATS's expiry. A holder whose renewals stop coming back lets go this long after the last
 * one that did, so it never answers for a lease another instance may already have taken.
 */
export const LAPSE_SHARE = 0.9;

/**
 * Renews a lease entry that still names `holder` at whatever revision it has now, or returns
 * null when it does not (lapsed, taken, or NATS away).
 *
 * A renewal whose reply was lost (a timeout while NATS was busy) may still have gone through:
 * the entry is then the holder's at a revision it never heard of, and every later renewal is
 * refused for naming the old one. Renewed at the revision it has, the lease stays with its holder
 * instead of being dropped while its key keeps every other instance out until it lapses.
 */
export async function renewIfStillHeld(kv: KV, key: string, holder: string): Promise<number | null> {
  try {
    const entry = await kv.get(key);
    if (!entry || entry.operation !== 'PUT' || entry.string() !== holder) return null;
    return await kv.update(key, holder, entry.revision);
  } catch {
    return null;
  }
}
