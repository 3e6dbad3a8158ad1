import {
  ConversationEventPageSchema,
  ConversationEventSchema,
  ConversationPageSchema,
  ConversationSchema,
  CreateConversationBodySchema,
  CreateTokenBodySchema,
  ErrorBodySchema,
  ErrorCode,
  ErrorCodeSchema,
  LivenessSchema,
  LogEventSchema,
  MessagePageSchema,
  MessageSchema,
  PageQuerySchema,
  PostMessageBodySchema,
  PostMessageResultSchema,
  ReadinessSchema,
  TokenSchema,
} from '@seqline/protocol';
import { z } from 'zod';

/**
 * The REST API as the OpenAPI description tells it. Bodies, parameters and answers are the
 * protocol's zod schemas, the ones requests are validated with; `test/openapi.e2e-spec.ts` checks
 * this table against the routes the server registers and replays every route's example.
 */

/** Request bodies, described as clients send them (fields with defaults are optional). */
export const REQUEST_SCHEMAS = {
  CreateConversationBody: CreateConversationBodySchema,
  PostMessageBody: PostMessageBodySchema,
  CreateTokenBody: CreateTokenBodySchema,
};

/** Answers, described as the server sends them. */
export const RESPONSE_SCHEMAS = {
  Conversation: ConversationSchema,
  ConversationPage: ConversationPageSchema,
  Message: MessageSchema,
  MessagePage: MessagePageSchema,
  LogEvent: LogEventSchema,
  ConversationEvent: ConversationEventSchema,
  ConversationEventPage: ConversationEventPageSchema,
  PostMessageResult: PostMessageResultSchema,
  Token: TokenSchema,
  Liveness: LivenessSchema,
  Readiness: ReadinessSchema,
  ErrorCode: ErrorCodeSchema,
  ErrorBody: ErrorBodySchema,
};

/** Who may call a route with authentication on: an admin (API key or admin token), a device token with `read`, or anyone. */
export type RouteAccess = 'admin' | 'read' | 'public';

export interface RouteParameter {
  name: string;
  in: 'query' | 'header';
  description: string;
  schema: z.ZodType;
  example?: string;
}

export interface RouteAnswer {
  status: number;
  description: string;
  /** A named answer schema, for JSON. */
  schema?: keyof typeof RESPONSE_SCHEMAS;
  /** Other media types, described in words. */
  mediaType?: 'text/event-stream' | 'text/html' | 'text/plain' | 'application/json';
}

export interface ApiRoute {
  method: 'get' | 'post';
  /** OpenAPI's form: `{id}` is a conversation id. */
  path: string;
  operationId: string;
  tag: 'conversations' | 'devices' | 'tokens' | 'operations' | 'description';
  summary: string;
  description?: string;
  access: RouteAccess;
  /** Example for the `{id}` path parameter. */
  id?: string;
  parameters?: RouteParameter[];
  /** `optional`: the route takes no body as an empty one. */
  body?: { schema: keyof typeof REQUEST_SCHEMAS; example: unknown; optional?: boolean };
  answers: RouteAnswer[];
  /** Errors this route answers beyond those every route of its kind may (credentials, a malformed body or id, the origin, INTERNAL). */
  errors: ErrorCode[];
}

const page: RouteParameter[] = [
  { name: 'after', in: 'query', description: 'the `next` of the previous page', schema: PageQuerySchema.shape.after },
  { name: 'limit', in: 'query', description: 'items per page', schema: PageQuerySchema.shape.limit, example: '20' },
];

/** `/health/ready` and its alias `/health`. */
const readinessAnswers: RouteAnswer[] = [
  { status: 200, description: 'ready (or degraded)', schema: 'Readiness' },
  { status: 503, description: 'not ready: a check is down', schema: 'Readiness' },
];

export const API_ROUTES: ApiRoute[] = [
  {
    method: 'post',
    path: '/v1/conversations',
    operationId: 'createConversation',
    tag: 'conversations',
    summary: 'Create a conversation',
    description: 'The id is generated when omitted.',
    access: 'admin',
    body: { schema: 'CreateConversationBody', example: { id: 'c1', title: 'Trip to Lisbon' }, optional: true },
    answers: [{ status: 201, description: 'the conversation', schema: 'Conversation' }],
    errors: [ErrorCode.ConversationExists, ErrorCode.Unavailable],
  },
  {
    method: 'get',
    path: '/v1/conversations',
    operationId: 'listConversations',
    tag: 'conversations',
    summary: 'List conversations, ordered by id',
    description: '`next` is a conversation id.',
    access: 'admin',
    parameters: page,
    answers: [{ status: 200, description: 'a page of conversations', schema: 'ConversationPage' }],
    errors: [ErrorCode.ValidationFailed, ErrorCode.Unavailable],
  },
  {
    method: 'get',
    path: '/v1/conversations/{id}',
    operationId: 'getConversation',
    tag: 'conversations',
    summary: 'Get a conversation',
    access: 'admin',
    id: 'c1',
    answers: [{ status: 200, description: 'the conversation', schema: 'Conversation' }],
    errors: [ErrorCode.UnknownConversation, ErrorCode.Unavailable],
  },
  {
    method: 'post',
    path: '/v1/conversations/{id}/messages',
    operationId: 'postMessage',
    tag: 'conversations',
    summary: 'Post a user message',
    description: 'Idempotent by `messageId`: posting it again with the same text answers the same cursor with `duplicate: true`; other text under a posted `messageId` (an edited question) is refused `MESSAGE_EXISTS`. Agents receive it as a prompt.',
    access: 'admin',
    id: 'c1',
    body: { schema: 'PostMessageBody', example: { messageId: 'q1', text: 'Which neighbourhood should we stay in?' } },
    answers: [{ status: 202, description: 'written to the log', schema: 'PostMessageResult' }],
    errors: [ErrorCode.UnknownConversation, ErrorCode.MessageExists, ErrorCode.MessageTooLarge, ErrorCode.Unavailable],
  },
  {
    method: 'get',
    path: '/v1/conversations/{id}/messages',
    operationId: 'listMessages',
    tag: 'conversations',
    summary: 'Read the history, one item per message',
    description:
      'As persisted in Postgres (which may lag the log by a flush interval), in log order; `after` and `next` are message cursors. A page holds up to `limit` messages, and fewer once they hold about 4 MiB of text and parts (always at least one): follow `next` until it is `null`.',
    access: 'admin',
    id: 'c1',
    parameters: page,
    answers: [{ status: 200, description: 'a page of messages', schema: 'MessagePage' }],
    errors: [ErrorCode.ValidationFailed, ErrorCode.UnknownConversation, ErrorCode.BadCursor, ErrorCode.Unavailable],
  },
  {
    method: 'get',
    path: '/v1/conversations/{id}/events',
    operationId: 'listEvents',
    tag: 'conversations',
    summary: 'Read device events after a cursor, from the log',
    description: 'Without `after`, from the oldest event the log holds. A cursor the log can no longer continue from answers `410 CURSOR_EXPIRED`; read `/messages` instead.',
    access: 'admin',
    id: 'c1',
    parameters: page,
    answers: [{ status: 200, description: 'a page of events', schema: 'ConversationEventPage' }],
    errors: [ErrorCode.ValidationFailed, ErrorCode.UnknownConversation, ErrorCode.BadCursor, ErrorCode.CursorExpired, ErrorCode.Unavailable],
  },
  {
    method: 'get',
    path: '/v1/conversations/{id}/stream',
    operationId: 'streamConversation',
    tag: 'devices',
    summary: 'Follow a conversation (Server-Sent Events)',
    description:
      'Everything after the resume point, then live events, with no gap and no duplicate. The stream opens with `retry: 1000`; a snapshot comes as `event: snapshot` with `data` `{ conversationId, cursor, messages: Message[] }`; every event is an unnamed message whose `id` is its cursor and whose `data` is a ConversationEvent; a resume point whose next events the log no longer holds is answered with a snapshot instead (the stream goes on from it; a second time on the same stream, `event: error` `CURSOR_EXPIRED`); any other error after the stream started comes as `event: error` with an ErrorBody, and ends it. `EventSource`, which cannot set headers, passes its token as `access_token`. `HEAD` is answered `405` with `Allow: GET`.',
    access: 'read',
    id: 'c1',
    parameters: [
      { name: 'Last-Event-ID', in: 'header', description: 'resume after this cursor (EventSource sends it by itself when it reconnects)', schema: z.string().optional() },
      { name: 'after', in: 'query', description: 'resume after this cursor when there is no `Last-Event-ID`; without either, a snapshot first', schema: z.string().optional() },
    ],
    answers: [{ status: 200, description: 'the stream', mediaType: 'text/event-stream' }],
    errors: [ErrorCode.UnknownConversation, ErrorCode.BadCursor, ErrorCode.RateLimited, ErrorCode.Unavailable],
  },
  {
    method: 'post',
    path: '/v1/tokens',
    operationId: 'createToken',
    tag: 'tokens',
    summary: 'Mint a device token',
    description: 'For an app backend holding an admin API key: an HS256 token for one user and the conversations it may use. Needs `AUTH_JWT_SECRET`; without it, `404 NOT_FOUND`.',
    access: 'admin',
    body: { schema: 'CreateTokenBody', example: { userId: 'user-42', conversations: { c1: ['read', 'post', 'cancel'] }, ttlSeconds: 3600 } },
    answers: [{ status: 201, description: 'the token and when it expires', schema: 'Token' }],
    errors: [ErrorCode.NotFound],
  },
  {
    method: 'get',
    path: '/health/live',
    operationId: 'getLiveness',
    tag: 'operations',
    summary: 'Liveness: the process serves HTTP',
    access: 'public',
    answers: [{ status: 200, description: 'alive', schema: 'Liveness' }],
    errors: [],
  },
  {
    method: 'get',
    path: '/health/ready',
    operationId: 'getReadiness',
    tag: 'operations',
    summary: 'Readiness: NATS, the log stream and Postgres',
    description: 'Persister lag past `PERSIST_LAG_DEGRADED` marks the instance `degraded`, still 200.',
    access: 'public',
    answers: readinessAnswers,
    errors: [],
  },
  {
    method: 'get',
    path: '/health',
    operationId: 'getHealth',
    tag: 'operations',
    summary: 'Readiness, as `/health/ready`',
    access: 'public',
    answers: readinessAnswers,
    errors: [],
  },
  {
    method: 'get',
    path: '/metrics',
    operationId: 'getMetrics',
    tag: 'operations',
    summary: 'Prometheus metrics',
    access: 'public',
    answers: [{ status: 200, description: 'the text exposition format', mediaType: 'text/plain' }],
    errors: [],
  },
  {
    method: 'get',
    path: '/v1/openapi.json',
    operationId: 'getOpenApi',
    tag: 'description',
    summary: 'This description (OpenAPI 3.1)',
    access: 'public',
    answers: [{ status: 200, description: 'the OpenAPI document', mediaType: 'application/json' }],
    errors: [],
  },
  {
    method: 'get',
    path: '/docs',
    operationId: 'getDocs',
    tag: 'description',
    summary: 'This description as a page',
    access: 'public',
    answers: [{ status: 200, description: 'an HTML page', mediaType: 'text/html' }],
    errors: [],
  },
];
