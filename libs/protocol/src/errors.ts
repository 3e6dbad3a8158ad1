import type { EndedMessageStatus } from './message.js';

/** Stable, machine-readable error codes. Every transport carries one of these with a human message. */
export const ErrorCode = {
  BadFrame: 'BAD_FRAME',
  FrameTooLarge: 'FRAME_TOO_LARGE',
  ValidationFailed: 'VALIDATION_FAILED',
  BadCursor: 'BAD_CURSOR',
  /** The log no longer holds the events after this cursor (retention, or a recreated log): load state again. */
  CursorExpired: 'CURSOR_EXPIRED',
  UnknownConversation: 'UNKNOWN_CONVERSATION',
  ConversationExists: 'CONVERSATION_EXISTS',
  UnknownMessage: 'UNKNOWN_MESSAGE',
  MessageExists: 'MESSAGE_EXISTS',
  MessageFinished: 'MESSAGE_FINISHED',
  PartOutOfOrder: 'PART_OUT_OF_ORDER',
  /** A part number already applied, sent again with other content: never applied, never a duplicate. */
  PartConflict: 'PART_CONFLICT',
  /** Another producer has taken the answer over; this one must stop writing to it. */
  Fenced: 'FENCED',
  DeltaTooLarge: 'DELTA_TOO_LARGE',
  MessageTooLarge: 'MESSAGE_TOO_LARGE',
  NotSubscribed: 'NOT_SUBSCRIBED',
  TooManySubscriptions: 'TOO_MANY_SUBSCRIPTIONS',
  NotFound: 'NOT_FOUND',
  Unauthorized: 'UNAUTHORIZED',
  Forbidden: 'FORBIDDEN',
  /** A browser request or WebSocket upgrade from a page whose origin is not in `ALLOWED_ORIGINS`. */
  OriginNotAllowed: 'ORIGIN_NOT_ALLOWED',
  RateLimited: 'RATE_LIMITED',
  Unavailable: 'UNAVAILABLE',
  Internal: 'INTERNAL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** The HTTP status each code is answered with over REST and SSE (WebSocket and NATS carry the code alone). */
export const HTTP_STATUS: Record<ErrorCode, number> = {
  BAD_FRAME: 400,
  FRAME_TOO_LARGE: 413,
  VALIDATION_FAILED: 400,
  BAD_CURSOR: 400,
  CURSOR_EXPIRED: 410,
  UNKNOWN_CONVERSATION: 404,
  CONVERSATION_EXISTS: 409,
  UNKNOWN_MESSAGE: 404,
  MESSAGE_EXISTS: 409,
  MESSAGE_FINISHED: 409,
  PART_OUT_OF_ORDER: 409,
  PART_CONFLICT: 409,
  FENCED: 409,
  DELTA_TOO_LARGE: 413,
  MESSAGE_TOO_LARGE: 413,
  NOT_SUBSCRIBED: 400,
  TOO_MANY_SUBSCRIPTIONS: 429,
  NOT_FOUND: 404,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  ORIGIN_NOT_ALLOWED: 403,
  RATE_LIMITED: 429,
  UNAVAILABLE: 503,
  INTERNAL: 500,
};

const KNOWN_CODES = new Set<string>(Object.values(ErrorCode));

/** Whether this version knows `code` (a newer service, or a peer instance of a newer version, may send others). */
export function isKnownErrorCode(code: string): code is ErrorCode {
  return KNOWN_CODES.has(code);
}

/** Whether the same request may succeed if sent again a little later (with back-off): a passing failure or a rate limit. */
export function isRetryable(code: string): boolean {
  return code === ErrorCode.Unavailable || code === ErrorCode.RateLimited;
}

/** WebSocket close codes the server uses, and what a client should do after each. */
export const CloseCode = {
  /** Server shutting down or redeploying: reconnect (to any instance) at once and resume. */
  GoingAway: 1001,
  /** A frame larger than the frame limit: fix the client; reconnecting resends nothing. */
  FrameTooLarge: 1009,
  /** Frames kept coming before the token was checked (more than 64, or over 1 MiB): reconnect, and wait for answers before sending more. */
  PolicyViolation: 1008,
  /** The token could not be checked now (the identity provider's key set unavailable): reconnect with back-off, with the same token. */
  TryAgainLater: 1013,
  /** The socket could not keep up and its send buffer passed the bound: reconnect and resume from the cursor. */
  SlowConsumer: 4008,
  /** No valid token: get one, then reconnect. */
  Unauthorized: 4401,
  /** The token expired: get a fresh one and reconnect (or send it in an `auth` frame before expiry). */
  TokenExpired: 4402,
  /** Too many connections for this user: close another first. */
  TooManyConnections: 4429,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

export interface ErrorBody {
  code: ErrorCode;
  message: string;
  /** With `MESSAGE_FINISHED`: how the message ended, so a producer that missed the notice of it still knows. */
  messageStatus?: EndedMessageStatus;
}

/** An error that crosses a transport boundary; the edge maps `code` to HTTP status or a WebSocket frame. */
export class SeqlineError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** With `MESSAGE_FINISHED`: how the message ended. */
    readonly messageStatus?: EndedMessageStatus,
  ) {
    super(message);
    this.name = 'SeqlineError';
  }

  toBody(): ErrorBody {
    return this.messageStatus ? { code: this.code, message: this.message, messageStatus: this.messageStatus } : { code: this.code, message: this.message };
  }
}
