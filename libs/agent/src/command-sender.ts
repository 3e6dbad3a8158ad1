import type { NatsConnection } from '@nats-io/transport-node';
import { AgentReplySchema, ErrorCode, SeqlineError, subjects, type AgentCommand, type Subjects } from '@seqline/protocol';
import { Semaphore } from './semaphore.js';

export interface CommandSenderOptions {
  prefix: string;
  maxInFlight: number;
  requestTimeoutMs: number;
  /** How long to keep retrying a command the service did not answer (NATS or all instances down). */
  retryForMs: number;
}

/** Sends commands as NATS requests, retrying unanswered ones; retries are safe because every command is idempotent. */
export class CommandSender {
  readonly subjects: Subjects;
  private readonly semaphore: Semaphore;
  private readonly encoder = new TextEncoder();

  constructor(
    private readonly nc: NatsConnection,
    private readonly options: CommandSenderOptions,
  ) {
    this.subjects = subjects(options.prefix);
    this.semaphore = new Semaphore(options.maxInFlight);
  }

  async send(conversationId: string, command: AgentCommand): Promise<string> {
    const data = this.encoder.encode(JSON.stringify(command));
    const deadline = Date.now() + this.options.retryForMs;
    for (let attempt = 1; ; attempt++) {
      await this.semaphore.acquire();
      let reply;
      try {
        const msg = await this.nc.request(this.subjects.agent(conversationId), data, { timeout: this.options.requestTimeoutMs });
        reply = AgentReplySchema.parse(msg.json());
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await sleep(Math.min(50 * 2 ** attempt, 2_000) * (0.5 + Math.random()));
        continue;
      } finally {
        this.semaphore.release();
      }
      if (reply.ok) return reply.cursor;
      const retryable = reply.error.code === ErrorCode.Unavailable || reply.error.code === ErrorCode.RateLimited;
      if (retryable && Date.now() < deadline) {
        await sleep(Math.min(50 * 2 ** attempt, 2_000));
        continue;
      }
      throw new SeqlineError(reply.error.code, reply.error.message);
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
