import { z } from 'zod';
import { ErrorCodeSchema } from './error-code.schema.js';
import { EndedMessageStatusSchema, IdSchema, MessageSchema } from './message.js';
import { ConversationEventSchema } from './events.js';

// Request bodies refuse fields they do not know: a misspelt one (`ttl` for `ttlSeconds`) would
// otherwise be dropped without a word and the request done with the default.

/** `POST /v1/conversations` */
export const CreateConversationBodySchema = z.strictObject({
  id: IdSchema.optional(),
  title: z.string().max(200).optional(),
});
export type CreateConversationBody = z.infer<typeof CreateConversationBodySchema>;

/**
 * `?after=&limit=` on every paginated route. Other parameters are refused: a misspelt one
 * (`?cursor=` for `?after=`) would answer the first page again and again, its `next` never taken.
 */
export const PageQuerySchema = z.strictObject({
  // `?after=` (an empty cursor, as `after=${next ?? ''}` sends on the first page) is no cursor.
  // Not bounded: a string that is not a cursor of the log is `BAD_CURSOR`, as on WebSocket and SSE.
  after: z
    .string()
    .optional()
    .transform((after) => after || undefined),
  limit: z.coerce.number().int().min(1).max(500).default(50),
});
export type PageQuery = z.infer<typeof PageQuerySchema>;

/** `POST /v1/conversations/:id/messages`: a user message, idempotent by `messageId`. */
export const PostMessageBodySchema = z.strictObject({
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

/** The answer of a paginated route, as a schema. */
export function pageSchema<T extends z.ZodType>(item: T) {
  return z.object({ items: z.array(item), next: z.string().nullable() });
}

/** A conversation as REST answers it. */
export const ConversationSchema = z.object({
  id: IdSchema,
  title: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
});

export const ConversationPageSchema = pageSchema(ConversationSchema);
/** `GET /v1/conversations/:id/messages`: `after` and `next` are message cursors. */
export const MessagePageSchema = pageSchema(MessageSchema);
/** `GET /v1/conversations/:id/events`: `after` and `next` are event cursors. */
export const ConversationEventPageSchema = pageSchema(ConversationEventSchema);

/** `202` of `POST /v1/conversations/:id/messages`; `duplicate` when the message id was posted before. */
export const PostMessageResultSchema = z.object({ cursor: z.string(), duplicate: z.boolean() });

/** The body of every REST and SSE error answer, and of a refused WebSocket upgrade. */
export const ErrorBodySchema = z.object({ code: ErrorCodeSchema, message: z.string(), messageStatus: EndedMessageStatusSchema.optional() });

export const RightSchema = z.enum(['read', 'post', 'cancel']);
export type Right = z.infer<typeof RightSchema>;

/** `POST /v1/tokens` (API key): mints a device token for a user and the conversations it may use. */
export const CreateTokenBodySchema = z.strictObject({
  userId: z.string().min(1).max(128),
  conversations: z.record(z.string().regex(/^[A-Za-z0-9_-]{1,128}$/), z.array(RightSchema).min(1)).refine((value) => Object.keys(value).length <= 100, 'at most 100 conversations'),
  ttlSeconds: z.number().int().min(10).max(86_400).default(3_600),
});
export type CreateTokenBody = z.infer<typeof CreateTokenBodySchema>;

/** `201` of `POST /v1/tokens`. */
export const TokenSchema = z.object({ token: z.string(), expiresAt: z.string() });

/** `GET /health/live` */
export const LivenessSchema = z.object({ status: z.literal('ok') });

/** One check of `/health/ready` (`nats`, `stream`, `postgres`, `persister`), with its details. */
const HealthCheckSchema = z.looseObject({ status: z.enum(['up', 'down', 'degraded']) });

/** `GET /health/ready`, in @nestjs/terminus's format, plus the log's epoch. */
export const ReadinessSchema = z.object({
  status: z.enum(['ok', 'degraded', 'error', 'shutting_down']),
  info: z.record(z.string(), HealthCheckSchema).optional(),
  error: z.record(z.string(), HealthCheckSchema).optional(),
  details: z.record(z.string(), HealthCheckSchema),
  epoch: z.string(),
});
