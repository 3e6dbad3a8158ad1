import type { ErrorCode } from '@seqline/protocol';

/** The service refused a command; `code` is one of the protocol's error codes. */
export class AgentCommandError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(`${code}: ${message}`);
    this.name = 'AgentCommandError';
  }
}
