import { ErrorCode, formatCursor, SeqlineError } from '@seqline/protocol';
import type { LogEntry } from '@seqline/streams';

/** The part of `ConversationLog` a catch-up reads the log with. */
export interface LogReader {
  readBatches(conversationId: string, after: number, limit: number, batchSize: number): AsyncIterable<LogEntry[]>;
}

/**
 * The log's events after `after`, as `LogReader.readBatches` gives them, held to `logHead`: an
 * event the log held once, after `after`. A read that ends before it, short of `limit`, found
 * the events between expired or discarded since (retention, `LOG_MAX_BYTES`): that is
 * `CURSOR_EXPIRED`, where a short read would be taken for the conversation's head and the device
 * would miss them, untold.
 */
export async function* readLogAfter(log: LogReader, epoch: string, conversationId: string, after: number, limit: number, batchSize: number, logHead?: number): AsyncGenerator<LogEntry[]> {
  let count = 0;
  let last = after;
  for await (const batch of log.readBatches(conversationId, after, limit, batchSize)) {
    count += batch.length;
    last = batch.at(-1)?.seq ?? last;
    yield batch;
  }
  if (logHead !== undefined && count < limit && last < logHead) {
    throw new SeqlineError(ErrorCode.CursorExpired, `events after ${formatCursor({ epoch, seq: last })} are no longer in the log; subscribe without a cursor for a snapshot`);
  }
}
