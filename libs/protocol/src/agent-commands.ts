import { z } from 'zod';
import { ErrorCodeSchema } from './error-code.schema.js';
import { AuthorSchema, IdSchema } from './message.js';

/**
 * Commands an agent sends as a NATS request to `<prefix>.agent.<conversationId>`.
 * Every command is idempotent: a retry of the same command is answered with the first result.
 */
export const StartCommandSchema = z.object({
  type: z.literal('message.start'),
  messageId: IdSchema,
  agentId: z.string().min(1).max(128),
  /** Text the answer starts with (usually empty). */
  text: z.string().default(''),
});
export const AppendCommandSchema = z.object({
  type: z.literal('message.append'),
  messageId: IdSchema,
  /** 1, 2, 3, … per message; a repeated part is acknowledged without being applied again. */
  part: z.number().int().positive(),
  delta: z.string().min(1),
});
export const CompleteCommandSchema = z.object({ type: z.literal('message.complete'), messageId: IdSchema });
export const FailCommandSchema = z.object({ type: z.literal('message.fail'), messageId: IdSchema, error: z.string().max(1024) });

export const AgentCommandSchema = z.discriminatedUnion('type', [
  StartCommandSchema,
  AppendCommandSchema,
  CompleteCommandSchema,
  FailCommandSchema,
]);
export type AgentCommand = z.input<typeof AgentCommandSchema>;
export type ParsedAgentCommand = z.infer<typeof AgentCommandSchema>;

export const AgentReplySchema = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), cursor: z.string(), duplicate: z.boolean() }),
  z.object({
    ok: z.literal(false),
    error: z.object({ code: ErrorCodeSchema, message: z.string() }),
  }),
]);
export type AgentReply = z.infer<typeof AgentReplySchema>;

/** A user message handed to agents on `<prefix>.prompt.<conversationId>` (JetStream). */
export const PromptSchema = z.object({
  conversationId: IdSchema,
  messageId: IdSchema,
  author: AuthorSchema,
  text: z.string(),
  cursor: z.string(),
});
export type Prompt = z.infer<typeof PromptSchema>;

/** Published on `<prefix>.cancel.<conversationId>` when a device cancels a streaming answer. */
export const CancelNoticeSchema = z.object({ conversationId: IdSchema, messageId: IdSchema });
export type CancelNotice = z.infer<typeof CancelNoticeSchema>;
