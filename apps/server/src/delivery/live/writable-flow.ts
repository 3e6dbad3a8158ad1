import type { Writable } from 'node:stream';
import type { SinkFlow } from './conversation-feed.js';

/**
 * Catch-up back-pressure for a socket or HTTP response: full once `buffered()` passes
 * `threshold` (well below the bound that cuts a slow device off), drained on `drain` or `close`.
 */
export function writableFlow(stream: Writable, buffered: () => number, threshold: number): SinkFlow {
  return {
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
  };
}
