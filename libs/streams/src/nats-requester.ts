import { createInbox, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from '@nats-io/transport-node';

/** Nobody listens on the subject (no stream captures it, no service answers it). */
export class NoResponderError extends Error {}
export class RequestTimeoutError extends Error {}
/** A request made after `close()`: it would never be answered. */
export class RequesterClosedError extends Error {}

interface Pending {
  resolve(msg: Msg): void;
  reject(error: Error): void;
  deadline: number;
}

const SWEEP_MS = 100;

/**
 * Request/reply over one inbox subscription. `nc.request` costs a timer and an `Error` (with
 * its stack) per request even when it succeeds; on a hot path with thousands of requests a
 * second that is a large part of the CPU. Here a request is a publish and a map entry; replies
 * are matched by token, and one sweep fails the requests whose time is up.
 */
export class NatsRequester {
  private readonly inbox = createInbox();
  private readonly pending = new Map<string, Pending>();
  private readonly subscription: Subscription;
  /** Runs only while requests wait, so an idle process has no timer to wake for. */
  private sweeper?: ReturnType<typeof setInterval>;
  private next = 0;
  private closed = false;

  constructor(private readonly nc: NatsConnection) {
    this.subscription = nc.subscribe(`${this.inbox}.*`, {
      callback: (error, msg) => {
        if (!error) this.settle(msg);
      },
    });
  }

  request(subject: string, data: Uint8Array, options: { timeoutMs: number; headers?: MsgHdrs }): Promise<Msg> {
    const token = (this.next++).toString(36);
    return new Promise<Msg>((resolve, reject) => {
      if (this.closed) return reject(new RequesterClosedError('requests can no longer be sent: the service is shutting down'));
      this.pending.set(token, { resolve, reject, deadline: performance.now() + options.timeoutMs });
      if (!this.sweeper) {
        this.sweeper = setInterval(() => this.expire(), SWEEP_MS);
        this.sweeper.unref();
      }
      try {
        this.nc.publish(subject, data, { reply: `${this.inbox}.${token}`, headers: options.headers });
      } catch (error) {
        this.pending.delete(token);
        reject(error as Error);
      }
    });
  }

  close(): void {
    this.closed = true;
    clearInterval(this.sweeper);
    this.sweeper = undefined;
    this.subscription.unsubscribe();
    // Closed, not timed out: a caller that retries timeouts must not wait to retry on a closed requester.
    for (const pending of this.pending.values()) pending.reject(new RequesterClosedError('the connection closed before a reply came'));
    this.pending.clear();
  }

  private settle(msg: Msg): void {
    const token = msg.subject.slice(this.inbox.length + 1);
    const pending = this.pending.get(token);
    if (!pending) return;
    this.pending.delete(token);
    if (msg.data.length === 0 && msg.headers?.code === 503) pending.reject(new NoResponderError(`no responders on the subject`));
    else pending.resolve(msg);
  }

  private expire(): void {
    if (this.pending.size === 0) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
      return;
    }
    const now = performance.now();
    for (const [token, pending] of this.pending) {
      if (pending.deadline > now) continue;
      this.pending.delete(token);
      pending.reject(new RequestTimeoutError('no reply in time'));
    }
  }
}
