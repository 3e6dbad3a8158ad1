import { ErrorCode, SeqlineError } from '@seqline/protocol';

const CLOSING_REFUSALS = new Set<ErrorCode>([ErrorCode.Fenced, ErrorCode.MessageFinished, ErrorCode.Unavailable, ErrorCode.RateLimited]);

/** A refusal after which the answer is still open and this producer's; not one a retry ran out on (the service is away). */
export function leavesAnswerOpen(error: Error): boolean {
  if (!(error instanceof SeqlineError)) return false;
  return !CLOSING_REFUSALS.has(error.code);
}
