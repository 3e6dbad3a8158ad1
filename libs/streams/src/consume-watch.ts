import type { ConsumerMessages } from '@nats-io/jetstream';

export interface ConsumeWatch {
  /** A message arrived. */
  heard(): void;
  stop(): void;
}

export interface ConsumeWatchOptions {
  /** The `idle_heartbeat` the consume was set up with. */
  heartbeatMs: number;
  /** Silence (no message, no heartbeat) past which the consume is given up. */
  silenceMs: number;
  /** While true (the reader is busy with what it has), silence is expected and not judged. */
  busy(): boolean;
  /** Told why the consume was closed. */
  onEnd(reason: string): void;
}

/**
 * Closes a consume whose consumer is gone or that has fallen silent, so the loop reading it sets a
 * new one up. nats.js reports a deleted consumer only as a status and then waits for it for good;
 * after a reconnect during a leader election it looks the consumer up again every 15-45 s without
 * a word, and pulls the old leader held are lost with it.
 */
export function watchConsume(messages: ConsumerMessages, options: ConsumeWatchOptions): ConsumeWatch {
  let heardAt = Date.now();
  let stopped = false;
  const end = (reason: string): void => {
    if (stopped) return;
    stopped = true;
    clearInterval(watchdog);
    options.onEnd(reason);
    void messages.close();
  };
  let tickedAt = Date.now();
  const watchdog = setInterval(() => {
    const now = Date.now();
    // A late tick (the event loop held up) is not judged: what was heard meanwhile still waits behind it.
    const late = now - tickedAt > 2 * options.heartbeatMs;
    tickedAt = now;
    if (options.busy()) heardAt = now;
    else if (!late && now - heardAt > options.silenceMs) end('silent');
  }, options.heartbeatMs);
  watchdog.unref();
  void (async () => {
    for await (const status of messages.status()) {
      if (stopped) return;
      switch (status.type) {
        case 'heartbeat':
          heardAt = Date.now();
          break;
        case 'consumer_not_found':
        case 'consumer_deleted':
        case 'stream_not_found':
          return end(status.type);
        case 'heartbeats_missed':
          // Busy with what it has (a slow write), the reader pulls nothing more: no heartbeats are due.
          if (status.count >= 2 && !options.busy()) return end(status.type);
          break;
        default:
          break;
      }
    }
  })().catch(() => undefined);
  return {
    heard: () => void (heardAt = Date.now()),
    stop: () => {
      stopped = true;
      clearInterval(watchdog);
    },
  };
}
