import type { NatsConnection } from '@nats-io/transport-node';

/** The part of nats.js's protocol handler that decides when queued commands reach the socket. */
interface FlushingProtocol {
  flushPending(): void;
  outbound: { size(): number };
  pendingLimit: number;
}

/**
 * Sends what a connection queues once per event-loop turn instead of once per microtask run.
 *
 * nats.js flushes its outbound buffer on the microtask after the first command. A server that
 * handles a socket read holding many agents' appends answers each in its own async chain, so
 * each publish and each reply goes out as a write of its own: one syscall per event, which was
 * the largest single cost of the write path. Deferring the flush to `setImmediate` (after the
 * I/O callbacks of this turn) sends all of them in one write, at no cost in latency beyond the
 * work this turn was doing anyway. A buffer past the client's own threshold still goes at once.
 *
 * Returns false, changing nothing, when the client's internals are not the ones this relies on.
 */
export function coalesceWrites(nc: NatsConnection): boolean {
  const protocol = (nc as unknown as { protocol?: Partial<FlushingProtocol> }).protocol;
  if (!protocol || typeof protocol.flushPending !== 'function' || typeof protocol.outbound?.size !== 'function' || typeof protocol.pendingLimit !== 'number') return false;
  const target = protocol as FlushingProtocol;
  const flushNow = target.flushPending.bind(target);
  let scheduled = false;
  target.flushPending = () => {
    if (target.outbound.size() >= target.pendingLimit) return flushNow();
    if (scheduled) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      flushNow();
    });
  };
  // What was published right before a close still leaves: the deferred flush would find the socket gone.
  const close = nc.close.bind(nc);
  nc.close = (...args: Parameters<NatsConnection['close']>) => {
    flushNow();
    return close(...args);
  };
  return true;
}
