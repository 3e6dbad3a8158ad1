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

export const RightSchema = z.enum(['read', 'post', 'cancel']);
export type Right = z.infer<typeof RightSchema>;

/** `POST /v1/tokens` (API key): mints a device token for a user and the conversations it may use. */
export const CreateTokenBodySchema = z.object({
  userId: z.string().min(1).max(128),
  conversations: z.record(z.string().regex(/^[A-Za-z0-9_-]{1,128}$/), z.array(RightSchema).min(1)).refine((value) => Object.keys(value).length <= 100, 'at most 100 conversations'),
  ttlSeconds: z.number().int().min(10).max(86_400).default(3_600),
});
export type CreateTokenBody = z.infer<typeof CreateTokenBodySchema>;
