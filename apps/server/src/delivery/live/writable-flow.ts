import type { Writable } from 'node:stream';
import type { FeedSink } from './conversation-feed.js';

/**
 * How a socket or HTTP response takes catch-up batches: each batch is written corked (its frames
 * leave in one write, not one each), and catch-up waits while `buffered()` is past a quarter of
 * the slow-device bound, so a device on a slow network catches up at its own pace instead of
 * being cut off. Shared by the WebSocket and SSE sinks.
 */
export function writableBatching(stream: Writable, buffered: () => number, maxBufferedBytes: number): Pick<FeedSink, 'batch' | 'flow'> {
  const threshold = maxBufferedBytes / 4;
  return {
    batch: (send) => {
      stream.cork();
      try {
        send();
      } finally {
        stream.uncork();
      }
    },
    flow: {
      full: () => buffered() > threshold,
      drained: () =>
        new Promise<void>((resolve) => {
          if (stream.destroyed || !stream.writableNeedDrain) return resolve();
          const done = (): void => {
            stream.off('drain', done);
            stream.off('close', done);
            resolve();
          };
          stream.on('drain', done);
          stream.on('close', done);
        }),
    },
  };
}
