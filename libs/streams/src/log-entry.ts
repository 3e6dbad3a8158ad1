import { BLOCK_TYPES, formatCursor, ID_PATTERN, illFormedAt, MAX_BLOCK_ID, LogEventSchema, LogRecordSchema, type BlockRef, type ConversationEvent, type LogEvent, type LogRecord } from '@seqline/protocol';

/** One event read back from the log, with its stream sequence. */
export interface LogEntry {
  conversationId: string;
  seq: number;
  prev: number;
  event: LogEvent;
  time: Date;
  /**
   * Set when the event's type is one this version does not know (written by a newer version):
   * it keeps its place in the chain and changes no message (see docs/protocol.md, compatibility).
   */
  unknownType?: string;
  /**
   * The event's JSON exactly as the log holds it (delivery path only, when the record has the
   * service's own form), so frames are assembled around it instead of serialising it again.
   */
  eventJson?: string;
}

/** A log payload that is not a log record at all; the persister skips it and records a hole. */
export class UndecodableEventError extends Error {
  constructor(
    message: string,
    readonly seq: number,
  ) {
    super(message);
  }
}

const KNOWN_TYPES: ReadonlySet<string> = new Set(LogEventSchema.options.map((option) => option.shape.type.value));

const decoder = new TextDecoder();

/** Decodes and validates an event in full: for readers that must refuse anything malformed (the persister). */
export function decodeEntry(conversationId: string, seq: number, data: Uint8Array, time: Date): LogEntry {
  let json: unknown;
  try {
    json = JSON.parse(decoder.decode(data));
  } catch {
    throw new UndecodableEventError(`log event ${seq} of ${conversationId} is not JSON`, seq);
  }
  const parsed = LogRecordSchema.safeParse(json);
  if (parsed.success) return { conversationId, seq, prev: parsed.data.prev, event: parsed.data.event, time };
  const withNewerBlock = appendToNewerBlock(json);
  if (withNewerBlock) return { conversationId, seq, prev: withNewerBlock.prev, event: withNewerBlock.event, time };
  const record = json as Partial<LogRecord> | null;
  const event = record?.event as { type?: unknown; messageId?: unknown } | undefined;
  // Only the chain is read of an event of a newer type, but its id reaches Postgres's queries and
  // its text a row's blocks: held to what the service's own events are held to, or one such event
  // could fail every batch that carries it, and persisting would stop for everyone.
  if (isChainLink(record?.prev) && typeof event?.type === 'string' && typeof event.messageId === 'string' && ID_PATTERN.test(event.messageId) && !KNOWN_TYPES.has(event.type) && illFormedAt(event) === undefined) {
    return { conversationId, seq, prev: record.prev, event: event as LogEvent, time, unknownType: event.type };
  }
  throw new UndecodableEventError(`log event ${seq} of ${conversationId} is not a valid log record: ${parsed.error.issues[0]?.message ?? 'invalid'}`, seq);
}

const KNOWN_BLOCK_TYPES: ReadonlySet<string> = new Set(BLOCK_TYPES);

/** A predecessor's sequence: 0 (none) or a stream sequence. */
function isChainLink(prev: unknown): prev is number {
  return typeof prev === 'number' && Number.isSafeInteger(prev) && prev >= 0;
}

/**
 * An append to a block of a type a newer version writes (its other fields as this version knows
 * them): kept with that block, which every reader passes over while still counting the part
 * (`isKnownBlock`). Refused whole, it would leave a hole in the persisted chain, and every later
 * part of the answer would then be out of order there.
 */
function appendToNewerBlock(json: unknown): LogRecord | undefined {
  const event = (json as { event?: { type?: unknown; block?: unknown } } | null)?.event;
  const block = event?.block as { type?: unknown; id?: unknown } | undefined;
  if (event?.type !== 'message.appended' || typeof block?.type !== 'string' || KNOWN_BLOCK_TYPES.has(block.type) || typeof block.id !== 'string') return undefined;
  // Kept in the message's row as it is: text Postgres cannot hold (a NUL) would fail every batch carrying it.
  if (block.id.length === 0 || block.id.length > MAX_BLOCK_ID || illFormedAt(block) !== undefined) return undefined;
  const { block: _newer, ...rest } = event;
  const parsed = LogRecordSchema.safeParse({ ...(json as object), event: rest });
  if (!parsed.success || parsed.data.event.type !== 'message.appended') return undefined;
  // Typed as a block this version knows, as blocks of unknown types are everywhere: readers ask `isKnownBlock` first.
  return { ...parsed.data, event: { ...parsed.data.event, block: block as unknown as BlockRef } };
}

/**
 * Decodes an event on the delivery path. Only the service writes the log, and it validated each
 * event before writing, so a structural check replaces the full schema here: this runs once per
 * event per instance, not per device.
 */
export function decodeDeliveredEntry(conversationId: string, seq: number, data: Uint8Array, time: Date): LogEntry {
  let record: Partial<LogRecord> | null;
  let text: string;
  try {
    text = decoder.decode(data);
    record = JSON.parse(text) as Partial<LogRecord> | null;
  } catch {
    throw new UndecodableEventError(`log event ${seq} of ${conversationId} is not JSON`, seq);
  }
  const event = record?.event as Partial<LogEvent> | undefined;
  if (typeof record?.prev !== 'number' || typeof event?.type !== 'string' || typeof event.messageId !== 'string') {
    throw new UndecodableEventError(`log event ${seq} of ${conversationId} is not a log record`, seq);
  }
  const entry: LogEntry = { conversationId, seq, prev: record.prev, event: event as LogEvent, time };
  if (!KNOWN_TYPES.has(event.type)) entry.unknownType = event.type;
  const eventJson = rawEvent(text, record);
  if (eventJson !== undefined) entry.eventJson = eventJson;
  return entry;
}

const RECORD_HEAD = /^\{"prev":(0|[1-9]\d*),"event":/;
const LINE_BREAK = /[\r\n]/;

/**
 * The text of a record's event, for a record written as `JSON.stringify({ prev, event })` (what
 * the service writes): parsed already, with those two keys only, `event` last, so everything
 * between its key and the final brace is the event's value. (A repeated key would still pass
 * the count: a second `prev` is caught by comparing it with the first; a second `event` is the
 * one JSON readers keep, as the service did.)
 */
function rawEvent(text: string, record: Partial<LogRecord>): string | undefined {
  // A line break between its tokens is JSON, but would end an SSE `data:` line mid-event.
  if (!text.endsWith('}') || Object.keys(record).length !== 2 || LINE_BREAK.test(text)) return undefined;
  const head = RECORD_HEAD.exec(text);
  return head && Number(head[1]) === record.prev ? text.slice(head[0].length, -1) : undefined;
}

export function toConversationEvent(entry: LogEntry, epoch: string): ConversationEvent {
  return {
    conversationId: entry.conversationId,
    cursor: formatCursor({ epoch, seq: entry.seq }),
    prev: formatCursor({ epoch, seq: entry.prev }),
    event: entry.event,
  };
}
