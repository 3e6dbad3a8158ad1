import { z } from 'zod';
import { ErrorCodeSchema } from './error-code.schema.js';
import { AuthorSchema, EndedMessageStatusSchema, IdSchema, MessageStatusSchema } from './message.js';
import { BlockRefSchema, MessageBlockSchema } from './message-blocks.js';
import { MAX_FAILURE_CHARS } from './limits.js';

/**
 * An agent's or a producer's name. It becomes part of the log entry's de-duplication id (a NATS
 * header), where a control character (a line break) cannot go: refused here, with the name of the
 * field, rather than failing the write later as if the service were down.
 */
const AgentNameSchema = z
  .string()
  .min(1)
  .max(128)
  .refine((name) => !hasControlCharacter(name), 'must not contain control characters');

function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

/** The producer epoch a `message.start` reply gave; commands of an older epoch are refused `FENCED`. */
const EpochSchema = z.number().int().positive().optional();

/**
 * Commands an agent sends as a NATS request to `<prefix>.agent.<conversationId>`.
 * Every command is idempotent: a retry of the same command is answered with the first result.
 */
export const StartCommandSchema = z.object({
  type: z.literal('message.start'),
  messageId: IdSchema,
  agentId: AgentNameSchema,
  /** Text the answer starts with (usually empty). */
  text: z.string().default(''),
  /**
   * Names this producer (one agent process working on this answer; a random id per attempt).
   * A start with another producer id takes a streaming answer over and fences the previous one.
   */
  producerId: AgentNameSchema.optional(),
});
export const AppendCommandSchema = z.object({
  type: z.literal('message.append'),
  messageId: IdSchema,
  /** 1, 2, 3, … per message; a part sent again with the same delta is acknowledged as a duplicate, with another delta refused. */
  part: z.number().int().positive(),
  delta: z.string().min(1),
  /** The typed part the delta goes to (text, reasoning, a tool call, data); absent: plain text. */
  block: BlockRefSchema.optional(),
  epoch: EpochSchema,
});
export const CompleteCommandSchema = z.object({ type: z.literal('message.complete'), messageId: IdSchema, epoch: EpochSchema });
export const FailCommandSchema = z.object({ type: z.literal('message.fail'), messageId: IdSchema, error: z.string().max(MAX_FAILURE_CHARS), epoch: EpochSchema });

export const AgentCommandSchema = z.discriminatedUnion('type', [
  StartCommandSchema,
  AppendCommandSchema,
  CompleteCommandSchema,
  FailCommandSchema,
]);
export type AgentCommand = z.input<typeof AgentCommandSchema>;
export type ParsedAgentCommand = z.infer<typeof AgentCommandSchema>;

/** What `message.start` tells the producer about the answer, so a restarted agent can go on where the last one stopped. */
export const AnswerStateSchema = z.object({
  status: MessageStatusSchema,
  /** Appends applied so far: go on with part `parts + 1`. */
  parts: z.number().int().nonnegative(),
  /** The text so far (an LLM continues from it as a prefix). */
  text: z.string(),
  /** The typed parts so far, if the answer has any. */
  blocks: z.array(MessageBlockSchema).optional(),
  /**
   * Set when `blocks` was left out to keep the reply within the NATS server's `max_payload` (a
   * long answer in multi-byte text, whose text blocks repeat `text`): read them over REST.
   */
  blocksOmitted: z.literal(true).optional(),
  producerId: z.string().optional(),
  /** Send this with every later command of the answer. */
  epoch: z.number().int().positive(),
});
export type AnswerState = z.infer<typeof AnswerStateSchema>;

const AcceptedReplySchema = z.object({
  ok: z.literal(true),
  cursor: z.string(),
  duplicate: z.boolean(),
  answer: AnswerStateSchema.optional(),
  /**
   * The instance that writes this conversation now, when it is the one that owns its write
   * partition: later commands for the conversations it writes may go to it together, as a batch
   * on `<prefix>.writer.batch.<writer>`.
   */
  writer: z.string().optional(),
});

/** A reply as this version of the service writes it. */
export const AgentReplySchema = z.discriminatedUnion('ok', [
  AcceptedReplySchema,
  z.object({
    ok: z.literal(false),
    error: z.object({ code: ErrorCodeSchema, message: z.string(), messageStatus: EndedMessageStatusSchema.optional() }),
  }),
]);
export type AgentReply = z.infer<typeof AgentReplySchema>;

/**
 * A reply as an agent reads it: an error code this version does not know (a newer service
 * added it) is still a refusal, final like every code that is not documented retryable, rather
 * than an unreadable reply to retry.
 */
export const ReceivedAgentReplySchema = z.discriminatedUnion('ok', [
  AcceptedReplySchema,
  z.object({
    ok: z.literal(false),
    // A status this version does not know is dropped rather than making the refusal unreadable.
    error: z.object({ code: z.string().min(1), message: z.string(), messageStatus: EndedMessageStatusSchema.optional().catch(undefined) }),
  }),
]);
export type ReceivedAgentReply = z.infer<typeof ReceivedAgentReplySchema>;

/** A user message handed to agents on `<prefix>.prompt.<conversationId>` (JetStream). */
export const PromptSchema = z.object({
  conversationId: IdSchema,
  messageId: IdSchema,
  author: AuthorSchema,
  text: z.string(),
  cursor: z.string(),
});
export type Prompt = z.infer<typeof PromptSchema>;

/** How the `reason` of an answer the service ended as abandoned starts (older services say so only there). */
export const ABANDONED_ANSWER_REASON = 'agent lease expired';

/**
 * Published on `<prefix>.cancel.<conversationId>` when a streaming answer is ended for its agent:
 * a device cancelled it (`status` `aborted`), or the service ended it as abandoned (`failed`).
 * `reason` says why. Older services send no `status`: see `endedAsOf`.
 */
export const CancelNoticeSchema = z.object({
  conversationId: IdSchema,
  messageId: IdSchema,
  reason: z.string().max(500).optional(),
  status: z.enum(['aborted', 'failed']).optional(),
});
export type CancelNotice = z.infer<typeof CancelNoticeSchema>;
/** How an answer was ended for its agent: by a device's cancel, or by the service as abandoned. */
export type AnswerEnd = NonNullable<CancelNotice['status']>;

/** How a notice says its answer ended; one from an older service names an abandoned answer in `reason` alone. */
export function endedAsOf(notice: CancelNotice): AnswerEnd {
  return notice.status ?? (notice.reason?.startsWith(ABANDONED_ANSWER_REASON) ? 'failed' : 'aborted');
}
