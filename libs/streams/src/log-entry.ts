import { formatCursor, LogRecordSchema, type ConversationEvent, type LogEvent } from '@seqline/protocol';

/** One event read back from the log, with its stream sequence. */
export interface LogEntry {
  conversationId: string;
  seq: number;
  prev: number;
  event: LogEvent;
  time: Date;
}

const decoder = new TextDecoder();

export function decodeEntry(conversationId: string, seq: number, data: Uint8Array, time: Date): LogEntry {
  const record = LogRecordSchema.parse(JSON.parse(decoder.decode(data)));
  return { conversationId, seq, prev: record.prev, event: record.event, time };
}

export function toConversationEvent(entry: LogEntry, epoch: string): ConversationEvent {
  return {
    conversationId: entry.conversationId,
    cursor: formatCursor({ epoch, seq: entry.seq }),
    prev: formatCursor({ epoch, seq: entry.prev }),
    event: entry.event,
  };
}
