import type { LogStream } from './log-stream.js';

/** The durable consumer through which the log is persisted to Postgres. */
export const PERSISTER_CONSUMER = 'postgres';

export interface PersisterLag {
  /** Log events not yet written to Postgres (pending or in flight). */
  events: number;
  /** Age of the oldest of them. */
  seconds: number;
}

/** How far Postgres is behind the log, read from the shared consumer: any process can tell. */
export async function persisterLag(stream: LogStream): Promise<PersisterLag> {
  const info = await stream.jsm.consumers.info(stream.name, PERSISTER_CONSUMER);
  const events = info.num_pending + info.num_ack_pending;
  let seconds = 0;
  if (events > 0) {
    // STREAM.MSG.GET takes `next_by_subj` since NATS 2.9; the client's type only lists it for direct gets.
    const request = { seq: info.ack_floor.stream_seq + 1, next_by_subj: stream.subjects.allLogs } as unknown as { seq: number };
    const oldest = await stream.jsm.streams.getMessage(stream.name, request).catch(() => null);
    if (oldest) seconds = Math.max(0, (Date.now() - oldest.time.getTime()) / 1000);
  }
  return { events, seconds };
}
