/** Default limits; the server reads overrides from its environment. */
export const DEFAULT_LIMITS = {
  /** Largest WebSocket frame or agent command, in bytes. */
  frameBytes: 64 * 1024,
  /** Largest single append, in characters. */
  deltaChars: 16 * 1024,
  /** Largest message text, in characters. */
  messageChars: 256 * 1024,
  /** Subscriptions on one WebSocket. */
  subscriptionsPerSocket: 32,
} as const;

/**
 * Typed blocks one message may hold (fixed). Far above what a long agent run's steps, tool calls
 * and data parts use; it bounds what block ids and names, which the character limit does not
 * count, add to one message (up to 256 characters a block), and the work of finding a block.
 */
export const MAX_BLOCKS_PER_MESSAGE = 10_000;

/**
 * The longest token a device may use (fixed): it must fit an `auth` frame, and a request's headers
 * (Node takes 16 KiB of them) as `Authorization` or in the URL as `access_token`.
 */
export const MAX_TOKEN_CHARS = 12_288;

/** The longest error a `message.fail` may carry, in UTF-16 code units (fixed, not configurable). */
export const MAX_FAILURE_CHARS = 1024;

/**
 * Conversation and message ids become NATS subject tokens, so they are restricted to this alphabet.
 * `__proto__` is not an id: JSON objects keyed by ids (a token's `conversations` claim) cannot hold it.
 */
export const ID_PATTERN = /^(?!__proto__$)[A-Za-z0-9_-]{1,128}$/;

/** The most characters a block's id, a tool's name or a data part's name may have. */
export const MAX_BLOCK_ID = 128;
