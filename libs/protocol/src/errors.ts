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
  DeltaTooLarge: 'DELTA_TOO_LARGE',
  MessageTooLarge: 'MESSAGE_TOO_LARGE',
  NotSubscribed: 'NOT_SUBSCRIBED',
  TooManySubscriptions: 'TOO_MANY_SUBSCRIPTIONS',
  NotFound: 'NOT_FOUND',
  Unauthorized: 'UNAUTHORIZED',
  Forbidden: 'FORBIDDEN',
  RateLimited: 'RATE_LIMITED',
  Unavailable: 'UNAVAILABLE',
  Internal: 'INTERNAL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

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
  /** The socket could not keep up and its send buffer passed the bound: reconnect and resume from the cursor. */
  SlowConsumer: 4008,
  /** Missed heartbeats: reconnect and resume. */
  HeartbeatTimeout: 4009,
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
}

/** An error that crosses a transport boundary; the edge maps `code` to HTTP status or a WebSocket frame. */
export class SeqlineError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'SeqlineError';
  }

  toBody(): ErrorBody {
    return { code: this.code, message: this.message };
  }
}
