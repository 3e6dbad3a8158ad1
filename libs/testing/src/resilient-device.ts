import { ErrorCode, isRetryable } from '@seqline/protocol';
import { WsDevice } from './ws-device.js';

/**
 * A device that does what a phone app would: when its connection drops it reconnects, to the
 * next instance in its list, and subscribes again from its cursor.
 */
export class ResilientDevice extends WsDevice {
  reconnects = 0;
  readonly closeCodes: number[] = [];
  private stopped = false;
  /** One reconnect loop at a time: a socket that dies while opening must not start a second one. */
  private reconnecting = false;
  private next = 0;

  constructor(
    private readonly urls: string[],
    conversationId: string,
    offset = 0,
  ) {
    super(urls[offset % urls.length]!, conversationId);
    this.next = offset;
    this.onClose = (code) => {
      this.closeCodes.push(code);
      if (!this.stopped && !this.reconnecting) void this.reconnect(code === 1001 ? 0 : 50 + Math.random() * 150);
    };
    this.onError = (frame) => {
      if (this.stopped || frame.conversationId !== this.conversationId) return;
      if (frame.code === ErrorCode.CursorExpired) {
        // As the device SDK does: what follows the cursor is not in the log any more, so the device
        // starts again from a snapshot (its events from then on are counted as ever).
        this.resets++;
        this.cursor = undefined;
        this.send({ type: 'subscribe', conversationId: this.conversationId });
        return;
      }
      // As the device SDK does: a subscription refused for a passing reason is asked for again, after a pause.
      if (!isRetryable(frame.code)) return;
      this.refusals++;
      setTimeout(() => {
        if (!this.stopped && this.open) this.send({ type: 'subscribe', conversationId: this.conversationId, ...(this.cursor ? { after: this.cursor } : {}) });
      }, 200 + Math.random() * 300);
    };
  }

  /** Subscriptions refused with a retryable code (and asked for again). */
  refusals = 0;
  /** Subscriptions ended with `CURSOR_EXPIRED`, and started again from a snapshot. */
  resets = 0;

  get duplicates(): number {
    return this.violations.filter((violation) => violation.startsWith('duplicate')).length;
  }

  get gaps(): number {
    return this.violations.filter((violation) => violation.startsWith('gap')).length;
  }

  /** Connects, retrying (on the next instances) until it is subscribed, as an app starting on a bad network would. */
  async start(): Promise<void> {
    try {
      await this.connect();
    } catch {
      await this.reconnect(50);
    }
    await this.until(() => this.frames.some((frame) => frame.type === 'snapshot' || frame.type === 'subscribed'), 30_000);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.close();
  }

  private async reconnect(delayMs: number): Promise<void> {
    this.reconnecting = true;
    try {
      await this.reconnectLoop(delayMs);
    } finally {
      this.reconnecting = false;
    }
    // Cut again while the last attempt was settling: go round once more.
    if (!this.stopped && this.closeCode !== undefined) void this.reconnect(50);
  }

  private async reconnectLoop(delayMs: number): Promise<void> {
    for (let attempt = 0; !this.stopped; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, delayMs + Math.min(attempt * 100, 1_000)));
      this.url = this.urls[++this.next % this.urls.length]!;
      try {
        this.reconnects++;
        await this.connect();
        return;
      } catch {
        // That instance is down or the network cut us again: try the next one.
      }
    }
  }
}
