import { Injectable } from '@nestjs/common';
import { ErrorCode, type AgentReply } from '@seqline/protocol';

/**
 * Commands an instance holds at once, waiting for the log or Postgres (a batch counts its lines).
 * Far above what its agents keep in flight at full speed (one append per answer); reached only
 * when a dependency stalls or an agent floods, and then refused `UNAVAILABLE` instead of queued.
 */
export const MAX_COMMANDS_IN_FLIGHT = 10_000;

/** The refusal of a command past the limit: retryable, as a stall is passing. */
export const SHED_REPLY: AgentReply = {
  ok: false,
  error: { code: ErrorCode.Unavailable, message: `the instance holds ${MAX_COMMANDS_IN_FLIGHT} commands not answered yet; retry shortly` },
};

/**
 * One count of the commands this instance holds, whoever sent them: agents directly, or another
 * instance handing over a write for a partition this one owns. Counted apart, the writes handed
 * over would queue without bound behind a stalled Postgres while every agent retried them.
 */
@Injectable()
export class CommandsInFlight {
  readonly limit = MAX_COMMANDS_IN_FLIGHT;
  private held = 0;

  /** Takes room for `commands`; false, taking nothing, past the limit. */
  take(commands: number): boolean {
    if (this.held + commands > this.limit) return false;
    this.held += commands;
    return true;
  }

  release(commands: number): void {
    this.held -= commands;
  }
}
