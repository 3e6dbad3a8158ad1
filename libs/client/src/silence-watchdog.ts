export interface SilenceWatchdogOptions {
  /** Silence this long makes the watchdog ask (`ping`). Default 25 s, the server's own heartbeat interval. */
  intervalMs?: number;
  /** No frame this long after asking, and the connection counts as dead. Default 10 s. */
  timeoutMs?: number;
}

/** The wait after a ping while a subscription is still catching up (see the constructor). */
export const CATCHING_UP_TIMEOUT_MS = 60_000;

/**
 * Notices a connection that died without a close: a phone that changed networks or a laptop that
 * slept leaves a socket that looks open for as long as the operating system takes to give it up
 * (minutes, or hours). The server's WebSocket pings cannot help here, since browsers answer them
 * without telling the page. After `intervalMs` without a frame, the watchdog sends a ping; if
 * nothing at all arrives within `timeoutMs` after it, the connection is declared dead.
 *
 * A busy connection never pings, and the decision rests on whether anything arrived after the
 * ping was sent, so a timer that fires late (a throttled background tab) cannot condemn a live
 * connection.
 */
export class SilenceWatchdog {
  private timer?: ReturnType<typeof setTimeout>;
  private lastHeardAt = 0;
  /** Frames heard so far: whether any came after a ping is what decides, not the clock. */
  private frames = 0;
  private readonly intervalMs: number;
  private readonly timeoutMs: number;

  /**
   * `catchingUp`: whether the server still owes a subscription its start or its catch-up. A large
   * snapshot over a slow link is one frame that takes its time, with the server's answer to the
   * ping queued behind it: the wait after a ping is then at least `CATCHING_UP_TIMEOUT_MS`.
   */
  constructor(
    options: SilenceWatchdogOptions,
    private readonly ping: () => void,
    private readonly dead: () => void,
    private readonly catchingUp: () => boolean = () => false,
  ) {
    this.intervalMs = options.intervalMs ?? 25_000;
    this.timeoutMs = options.timeoutMs ?? 10_000;
  }

  /** The connection opened: silence counts from now. */
  start(): void {
    this.lastHeardAt = Date.now();
    this.schedule(this.intervalMs, () => this.check());
  }

  /** A frame arrived. */
  heard(): void {
    this.lastHeardAt = Date.now();
    this.frames++;
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private check(): void {
    const quietMs = Date.now() - this.lastHeardAt;
    if (quietMs < this.intervalMs) return this.schedule(this.intervalMs - quietMs, () => this.check());
    const framesBefore = this.frames;
    this.ping();
    const timeoutMs = this.catchingUp() ? Math.max(this.timeoutMs, CATCHING_UP_TIMEOUT_MS) : this.timeoutMs;
    this.schedule(timeoutMs, () => (this.frames > framesBefore ? this.check() : this.dead()));
  }

  private schedule(ms: number, then: () => void): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      then();
    }, ms);
  }
}
