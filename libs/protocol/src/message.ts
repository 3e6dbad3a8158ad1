import { z } from 'zod';
import { ID_PATTERN } from './limits.js';
import { MessageBlockSchema } from './message-blocks.js';

export const IdSchema = z.string().regex(ID_PATTERN, 'ids are 1-128 characters of A-Z a-z 0-9 _ - (not __proto__)');

export const AuthorSchema = z.object({
  role: z.enum(['user', 'agent', 'system']),
  id: z.string().min(1).max(128),
});
export type Author = z.infer<typeof AuthorSchema>;

export const MessageStatusSchema = z.enum(['streaming', 'complete', 'aborted', 'failed']);
export type MessageStatus = z.infer<typeof MessageStatusSchema>;
export const EndedMessageStatusSchema = MessageStatusSchema.exclude(['streaming']);
export type EndedMessageStatus = z.infer<typeof EndedMessageStatusSchema>;

/** A message as devices and admins see it: one prompt or one answer with its accumulated text. */
export const MessageSchema = z.object({
  id: IdSchema,
  author: AuthorSchema,
  status: MessageStatusSchema,
  /** Plain text and the text of every text block, in the order appended. */
  text: z.string(),
  /** Typed parts (text, reasoning, tool calls, data) in order of first appearance; absent while the message has none. */
  blocks: z.array(MessageBlockSchema).optional(),
  /** Appends applied so far; the next append of a streaming message is part `parts + 1`. */
  parts: z.number().int().nonnegative(),
  error: z.string().optional(),
  createdAt: z.string(),
  updatedAt: z.string(),
  /** Cursor of the event that created the message. */
  cursor: z.string(),
});
export type Message = z.infer<typeof MessageSchema>;

export function isFinished(status: MessageStatus): boolean {
  return status !== 'streaming';
}
