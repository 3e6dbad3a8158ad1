import type { Writable } from 'node:stream';
import type { FeedSink } from './conversation-feed.js';

/** How soon a sink full by its own count, not by its stream's, is looked at again. */
const RECHECK_MS = 10;

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
      // Never answered at once: a catch-up loop awaiting an answer already given would never let the
      // socket write, nor its close be heard, and would hold the whole process.
      drained: () =>
        new Promise<void>((resolve) => {
          if (stream.destroyed || stream.writableEnded) return void setImmediate(resolve);
          // Full by the caller's count (ws counts frames it has not handed to the socket yet) but not by the stream's.
          if (!stream.writableNeedDrain) return void setTimeout(resolve, RECHECK_MS);
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
