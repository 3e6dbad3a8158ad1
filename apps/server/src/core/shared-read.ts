/**
 * One read shared by every caller while it runs and reused for `reuseMs` after it started; a
 * failed read is not reused. For what public endpoints ask of NATS or Postgres (readiness,
 * scrapes): however often they are called, the dependency is asked about once per interval.
 */
export class SharedRead<T> {
  private last?: { at: number; read: Promise<T> };

  constructor(
    private readonly read: () => Promise<T>,
    private readonly reuseMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  get(): Promise<T> {
    if (this.last && this.now() - this.last.at <= this.reuseMs) return this.last.read;
    const entry = { at: this.now(), read: this.read() };
    this.last = entry;
    entry.read.catch(() => {
      if (this.last === entry) this.last = undefined;
    });
    return entry.read;
  }
}
