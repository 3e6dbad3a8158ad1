import { z } from 'zod';
import { illFormedAt } from './frame-parser.js';
import { AuthorSchema, IdSchema } from './message.js';
import { BlockRefSchema } from './message-blocks.js';

/** The events a conversation's log holds. Each names the message it changes. */
export const MessageCreatedSchema = z.object({
  type: z.literal('message.created'),
  messageId: IdSchema,
  author: AuthorSchema,
  /** `streaming` for an answer that will grow; `complete` for a prompt posted whole. */
  status: z.enum(['streaming', 'complete']),
  text: z.string(),
  /** The producer writing an answer (see `message.claimed`); absent for prompts and for agents that do not name one. */
  producerId: z.string().optional(),
  at: z.string(),
});
/**
 * Another producer took a streaming answer over (an agent restarted, its prompt redelivered):
 * from here on only commands of `epoch` are accepted. The text so far is kept.
 */
export const MessageClaimedSchema = z.object({
  type: z.literal('message.claimed'),
  messageId: IdSchema,
  producerId: z.string(),
  epoch: z.number().int().positive(),
  at: z.string(),
});
export const MessageAppendedSchema = z.object({
  type: z.literal('message.appended'),
  messageId: IdSchema,
  /** 1 for the first append of a message, then 2, 3, …: lets every reader spot a lost or repeated append. */
  part: z.number().int().positive(),
  delta: z.string(),
  /** The typed part the delta goes to; absent: plain text (see `message-blocks.ts`). */
  block: BlockRefSchema.optional(),
  at: z.string(),
});
export const MessageCompletedSchema = z.object({
  type: z.literal('message.completed'),
  messageId: IdSchema,
  at: z.string(),
});
export const MessageAbortedSchema = z.object({
  type: z.literal('message.aborted'),
  messageId: IdSchema,
  reason: z.string(),
  at: z.string(),
});
export const MessageFailedSchema = z.object({
  type: z.literal('message.failed'),
  messageId: IdSchema,
  error: z.string(),
  at: z.string(),
});

export const LogEventSchema = z.discriminatedUnion('type', [
  MessageCreatedSchema,
  MessageClaimedSchema,
  MessageAppendedSchema,
  MessageCompletedSchema,
  MessageAbortedSchema,
  MessageFailedSchema,
]);
export type LogEvent = z.infer<typeof LogEventSchema>;
export type LogEventType = LogEvent['type'];

/** An event's `at` as the service writes it (`toISOString`): a UTC time Postgres can store, which has no year 0. */
const EventTimeSchema = z.iso.datetime().refine((at) => !at.startsWith('0000-'), 'year 0 does not exist');

/**
 * The JetStream payload of one log entry: the event plus the stream sequence of its predecessor in
 * the same conversation. Its text is well-formed and its time valid, as in every record the
 * service writes (it refuses frames whose text is not): Postgres cannot store anything else, so a
 * record written some other way (by hand, or by a bug) is undecodable, a hole, rather than a
 * batch that fails for good.
 */
export const LogRecordSchema = z
  .object({
    prev: z.number().int().nonnegative(),
    event: LogEventSchema,
  })
  .superRefine((record, context) => {
    const illFormed = illFormedAt(record.event);
    if (illFormed !== undefined) {
      context.addIssue({ code: 'custom', path: ['event'], message: `event.${illFormed}: text must be well-formed Unicode, without NUL characters or unpaired surrogates` });
    }
    if (!EventTimeSchema.safeParse(record.event.at).success) context.addIssue({ code: 'custom', path: ['event', 'at'], message: 'event.at: not an ISO 8601 UTC time' });
  });
export type LogRecord = z.infer<typeof LogRecordSchema>;

/** An event as a device receives it (WebSocket `event` frame, SSE `data:`, REST events). */
export const ConversationEventSchema = z.object({
  conversationId: IdSchema,
  /** This event's cursor. */
  cursor: z.string(),
  /** The cursor of the conversation's previous event: a client that last applied `prev` has no gap. */
  prev: z.string(),
  event: LogEventSchema,
});
export type ConversationEvent = z.infer<typeof ConversationEventSchema>;
