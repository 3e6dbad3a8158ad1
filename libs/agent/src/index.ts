export * from './seqline-agent.js';
export * from './answer-stream.js';
/** The service refused a command; `code` is one of the protocol's error codes. */
export { SeqlineError, ErrorCode } from '@seqline/protocol';
export type { BlockRef, MessageBlock } from '@seqline/protocol';
