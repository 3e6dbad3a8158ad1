/**
 * Lets one log line of a kind through per interval and counts the rest, so a failure many
 * requests meet at once (thousands of devices asking for history while Postgres is down) is
 * logged as one line with a count, not once per request.
 */
export class LogThrottle {
  private last = -Infinity;
  private suppressed = 0;

  constructor(
    private readonly intervalMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Undefined while suppressed; otherwise how many lines were suppressed since the last one let through. */
  pass(): number | undefined {
    const now = this.now();
    if (now - this.last < this.intervalMs) {
      this.suppressed++;
      return undefined;
    }
    this.last = now;
    const suppressed = this.suppressed;
    this.suppressed = 0;
    return suppressed;
  }
}
