import { formatCursor, LogRecordSchema, type ConversationEvent, type LogEvent, type LogRecord } from '@seqline/protocol';

/** One event read back from the log, with its stream sequence. */
export interface LogEntry {
  conversationId: string;
  seq: number;
  prev: number;
  event: LogEvent;
  time: Date;
}

const decoder = new TextDecoder();

/** Decodes and validates an event in full: for readers that must refuse anything malformed (the persister). */
export function decodeEntry(conversationId: string, seq: number, data: Uint8Array, time: Date): LogEntry {
  const record = LogRecordSchema.parse(JSON.parse(decoder.decode(data)));
  return { conversationId, seq, prev: record.prev, event: record.event, time };
}

/**
 * Decodes an event on the delivery path. Only the service writes the log, and it validated each
 * event before writing, so a structural check replaces the full schema here: this runs once per
 * event per instance, and used to run once per event per device.
 */
export function decodeDeliveredEntry(conversationId: string, seq: number, data: Uint8Array, time: Date): LogEntry {
  const record = JSON.parse(decoder.decode(data)) as Partial<LogRecord> | null;
  const event = record?.event as Partial<LogEvent> | undefined;
  if (typeof record?.prev !== 'number' || typeof event?.type !== 'string' || typeof event.messageId !== 'string') {
    throw new Error(`log event ${seq} of ${conversationId} is not a log record`);
  }
  return { conversationId, seq, prev: record.prev, event: event as LogEvent, time };
}

export function toConversationEvent(entry: LogEntry, epoch: string): ConversationEvent {
  return {
    conversationId: entry.conversationId,
    cursor: formatCursor({ epoch, seq: entry.seq }),
    prev: formatCursor({ epoch, seq: entry.prev }),
    event: entry.event,
  };
}
