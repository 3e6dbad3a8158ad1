import { z } from 'zod';
import { IdSchema } from './message.js';

/** `POST /v1/conversations` */
export const CreateConversationBodySchema = z.object({
  id: IdSchema.optional(),
  title: z.string().max(200).optional(),
});
export type CreateConversationBody = z.infer<typeof CreateConversationBodySchema>;

/** `?after=&limit=` on every paginated route. */
export const PageQuerySchema = z.object({
  after: z.string().max(128).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
});
export type PageQuery = z.infer<typeof PageQuerySchema>;

/** `POST /v1/conversations/:id/messages`: a user message, idempotent by `messageId`. */
export const PostMessageBodySchema = z.object({
  messageId: IdSchema,
  text: z.string().min(1),
  authorId: z.string().min(1).max(128).default('admin'),
});
export type PostMessageBody = z.infer<typeof PostMessageBodySchema>;

export interface Page<T> {
  items: T[];
  /** Pass as `after` for the next page; null on the last page. */
  next: string | null;
}
