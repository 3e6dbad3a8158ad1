import { z } from 'zod';
import { ErrorCodeSchema } from './error-code.schema.js';
import { ConversationEventSchema } from './events.js';
import { EndedMessageStatusSchema, IdSchema, MessageSchema } from './message.js';
import { MAX_TOKEN_CHARS } from './limits.js';

const Ref = z.string().max(64).optional();

/** Frames a device sends on the WebSocket (`/v1/ws`), one JSON object per text frame. */
export const SubscribeFrameSchema = z.object({
  type: z.literal('subscribe'),
  ref: Ref,
  conversationId: IdSchema,
  /**
   * Resume after this cursor; omitted for a snapshot of the conversation followed by live events.
   * Not bounded here: any string that is not a cursor of the log is `BAD_CURSOR`, as on SSE and REST.
   */
  after: z.string().optional(),
});
export const UnsubscribeFrameSchema = z.object({ type: z.literal('unsubscribe'), ref: Ref, conversationId: IdSchema });
export const PostFrameSchema = z.object({
  type: z.literal('post'),
  ref: Ref,
  conversationId: IdSchema,
  /** Chosen by the device so a retried post is applied once. */
  messageId: IdSchema,
  text: z.string().min(1),
  authorId: z.string().min(1).max(128).optional(),
});
export const CancelFrameSchema = z.object({ type: z.literal('cancel'), ref: Ref, conversationId: IdSchema, messageId: IdSchema });
export const PingFrameSchema = z.object({ type: z.literal('ping'), ref: Ref });
/** Hands a fresh token to a live socket, for the same user, without dropping its subscriptions. */
export const AuthFrameSchema = z.object({ type: z.literal('auth'), ref: Ref, token: z.string().min(1).max(MAX_TOKEN_CHARS) });

export const ClientFrameSchema = z.discriminatedUnion('type', [
  SubscribeFrameSchema,
  UnsubscribeFrameSchema,
  PostFrameSchema,
  CancelFrameSchema,
  PingFrameSchema,
  AuthFrameSchema,
]);
export type ClientFrame = z.infer<typeof ClientFrameSchema>;

/** Frames the server sends. */
export const SnapshotFrameSchema = z.object({
  type: z.literal('snapshot'),
  ref: Ref,
  conversationId: IdSchema,
  /** The snapshot holds every event up to this cursor; live events follow from it. */
  cursor: z.string(),
  messages: z.array(MessageSchema),
});
export const SubscribedFrameSchema = z.object({
  type: z.literal('subscribed'),
  ref: Ref,
  conversationId: IdSchema,
  /** Events after this cursor follow. */
  cursor: z.string(),
  /** The conversation's last event when the subscription started: the device is live once it has applied it. */
  head: z.string(),
});
export const EventFrameSchema = ConversationEventSchema.extend({ type: z.literal('event') });
export const UnsubscribedFrameSchema = z.object({ type: z.literal('unsubscribed'), ref: Ref, conversationId: IdSchema });
export const AckFrameSchema = z.object({
  type: z.literal('ack'),
  ref: Ref,
  conversationId: IdSchema,
  messageId: IdSchema,
  cursor: z.string(),
});
export const PongFrameSchema = z.object({ type: z.literal('pong'), ref: Ref });
export const AuthenticatedFrameSchema = z.object({ type: z.literal('authenticated'), ref: Ref, expiresAt: z.string().nullable() });
export const ErrorFrameSchema = z.object({
  type: z.literal('error'),
  ref: Ref,
  conversationId: IdSchema.optional(),
  code: ErrorCodeSchema,
  message: z.string(),
  /** With `MESSAGE_FINISHED`: how the message ended. */
  messageStatus: EndedMessageStatusSchema.optional(),
});

export const ServerFrameSchema = z.discriminatedUnion('type', [
  SnapshotFrameSchema,
  SubscribedFrameSchema,
  EventFrameSchema,
  UnsubscribedFrameSchema,
  AckFrameSchema,
  PongFrameSchema,
  AuthenticatedFrameSchema,
  ErrorFrameSchema,
]);
export type ServerFrame = z.infer<typeof ServerFrameSchema>;
export type SnapshotFrame = z.infer<typeof SnapshotFrameSchema>;
export type EventFrame = z.infer<typeof EventFrameSchema>;
export type ErrorFrame = z.infer<typeof ErrorFrameSchema>;
