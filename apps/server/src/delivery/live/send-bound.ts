/**
 * The slow-consumer rule both transports apply to a device's unsent bytes: past the bound when
 * another frame comes, the device is cut off so it cannot slow anyone else. Judged on what was
 * unsent before that frame, so one large frame goes out whole. A snapshot may sit over the bound
 * until the backlog is back under it (the largest one sent since, not their sum): a long
 * conversation's snapshot is larger than the bound, and cutting it off at the next live event
 * would send the same snapshot again on every reconnect.
 */
export class SendBound {
  private allowance = 0;

  constructor(private readonly maxBufferedBytes: number) {}

  /** Whether a device whose unsent bytes were `backlog` before this frame is to be cut off. */
  exceeded(backlog: number): boolean {
    if (backlog <= this.maxBufferedBytes) this.allowance = 0;
    return backlog > this.maxBufferedBytes + this.allowance;
  }

  /** A snapshot of `bytes` went out. */
  snapshotSent(bytes: number): void {
    this.allowance = Math.max(this.allowance, bytes);
  }
}
