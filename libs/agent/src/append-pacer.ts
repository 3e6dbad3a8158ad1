/**
 * How far the smoothed round trip may rise above its floor before appends are held back (or the
 * floor itself, when that is larger: a distant service is not a busy one). Below this, holding
 * back costs a token more waiting than the shorter queues save it.
 */
const QUEUE_ALLOWANCE_MS = 15;
/** Per second, how much of the excess round trip turns into hold: the hold settles where the excess is gone. */
const GAIN_PER_SECOND = 10;
const MAX_HOLD_MS = 50;
/** The floor is the least round trip of the last one to two windows, so it follows a service that moved or a network that changed. */
const FLOOR_WINDOW_MS = 5_000;
/** Weight of a new sample in the smoothed round trip (as TCP's). */
const SMOOTHING = 1 / 8;

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

  /** How long an answer waits after an acknowledgement before it sends its next append. */
  holdMs(): number {
    return this.hold;
  }

  /** One command's round trip, from its publish to its reply. */
  observe(roundTripMs: number): void {
    const now = this.clock();
    if (now - this.windowStartedAt >= FLOOR_WINDOW_MS) {
      this.previousFloorMs = this.floorMs;
      this.floorMs = Infinity;
      this.windowStartedAt = now;
    }
    this.floorMs = Math.min(this.floorMs, roundTripMs);
    this.smoothedMs = this.smoothedMs === undefined ? roundTripMs : this.smoothedMs + SMOOTHING * (roundTripMs - this.smoothedMs);
    const floor = Math.min(this.floorMs, this.previousFloorMs);
    const excess = this.smoothedMs - floor - Math.max(QUEUE_ALLOWANCE_MS, floor);
    // A long silence says nothing about the queues now: it adds at most a second's worth.
    const seconds = Math.min(now - this.updatedAt, 1_000) / 1_000;
    this.updatedAt = now;
    this.hold = Math.min(MAX_HOLD_MS, Math.max(0, this.hold + GAIN_PER_SECOND * excess * seconds));
  }
}
