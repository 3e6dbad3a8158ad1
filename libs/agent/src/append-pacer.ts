/**
 * How far the smoothed round trip may rise above its floor before appends are held back (or the
 * floor itself, when that is larger: a distant service is not a busy one). Below this, holding
 * back costs a token more waiting than the shorter queues save it.
 */
const QUEUE_ALLOWANCE_MS = 15;
/** Per second, how much of the excess round trip turns into hold: the hold settles where the excess is gone. */
const GAIN_PER_SECOND = 10;
/** A token waits at most this much longer than a round trip; past it, fewer events would not be worth the wait. */
const MAX_HOLD_MS = 50;
/** The floor is the least round trip of the last one to two windows, so it follows a service that moved or a network that changed. */
const FLOOR_WINDOW_MS = 5_000;
/** Weight of a new sample in the smoothed round trip (as TCP's). */
const SMOOTHING = 1 / 8;
/** A gap this long between replies says nothing about the queues now: the pacer starts again from the next reply. */
const SILENCE_MS = 1_000;

/**
 * Paces an agent connection's appends by the service's round trip.
 *
 * With one append in flight per answer, an answer sends its next part the moment the last is
 * acknowledged. On a service with spare capacity that keeps latency at one round trip. On a
 * saturated one it does not: every answer always has an append waiting, so the queues (in NATS,
 * in the instances' event loops) fill until the round trip is the number of answers over the
 * events per second the service sustains, and everything else the service does (a device
 * reconnecting, a new subscriber) waits in those queues too. Once the round trip climbs well
 * above its floor, each answer waits a little after an acknowledgement: it sends fewer, larger
 * appends, the queues stay short, and the text arrives as soon. A service with spare capacity
 * sees no hold at all.
 *
 * One pacer serves every answer on a connection, since they share the queues.
 */
export class AppendPacer {
  private smoothedMs?: number;
  private floorMs = Infinity;
  private previousFloorMs = Infinity;
  private windowStartedAt: number;
  private updatedAt: number;
  private hold = 0;

  constructor(private readonly clock: () => number = () => performance.now()) {
    this.windowStartedAt = this.updatedAt = clock();
  }

  /** How long an answer waits after an acknowledgement before it sends its next append (under 1 ms: not at all). */
  holdMs(): number {
    return this.hold;
  }

  /** One command's round trip, from its publish to its reply. */
  observe(roundTripMs: number): void {
    const now = this.clock();
    if (now - this.updatedAt >= SILENCE_MS) this.restart(now);
    if (now - this.windowStartedAt >= FLOOR_WINDOW_MS) this.nextWindow(now);
    this.floorMs = Math.min(this.floorMs, roundTripMs);
    this.smoothedMs = this.smoothedMs === undefined ? roundTripMs : this.smoothedMs + SMOOTHING * (roundTripMs - this.smoothedMs);
    const floor = Math.min(this.floorMs, this.previousFloorMs);
    const excess = this.smoothedMs - floor - Math.max(QUEUE_ALLOWANCE_MS, floor);
    const seconds = (now - this.updatedAt) / 1_000;
    this.updatedAt = now;
    this.hold = Math.min(MAX_HOLD_MS, Math.max(0, this.hold + GAIN_PER_SECOND * excess * seconds));
  }

  private restart(now: number): void {
    this.smoothedMs = undefined;
    this.hold = 0;
    this.updatedAt = now;
    // The floor stays: a service that was fast before a pause is likely fast after it, but not a floor from long ago.
    if (now - this.windowStartedAt >= 2 * FLOOR_WINDOW_MS) this.floorMs = this.previousFloorMs = Infinity;
  }

  /**
   * While the hold is working (above 0, below its cap), the queue it keeps short never quite
   * empties, so a window's least round trip is a queued one: the floor may not rise then, or
   * it would creep up window by window until the pacer stopped holding. At the cap, or with no
   * hold, a higher floor is taken as it is: the network, not a queue, changed.
   */
  private nextWindow(now: number): void {
    const working = this.hold > 0 && this.hold < MAX_HOLD_MS;
    this.previousFloorMs = working ? Math.min(this.previousFloorMs, this.floorMs) : this.floorMs;
    this.floorMs = Infinity;
    this.windowStartedAt = now;
  }
}
