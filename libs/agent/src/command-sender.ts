import type { NatsConnection } from '@nats-io/transport-node';
import { NatsRequester, NoResponderError } from '@seqline/streams';
import { isRetryable, partitionOf, ReceivedAgentReplySchema, SeqlineError, subjects, type AgentCommand, type ErrorCode, type ReceivedAgentReply, type Subjects } from '@seqline/protocol';
import type { AcceptedReply, CommandChannel } from './answer-stream.js';
import { Semaphore } from './semaphore.js';

export interface CommandSenderOptions {
  prefix: string;
  maxInFlight: number;
  requestTimeoutMs: number;
  /** How long to keep retrying a command the service did not answer (NATS or all instances down). */
  retryForMs: number;
}

/** After the owner subject failed other than by having no owner (a timeout, a permission), use the any-instance subject this long. */
const OWNER_ROUTE_BACKOFF_MS = 10_000;

/**
 * Sends commands as NATS requests, retrying unanswered ones; retries are safe because every
 * command is idempotent. A command goes to the instance owning its conversation's write
 * partition; while the partition has no owner (an instance died or is handing over) it goes to
 * any instance instead, so a hand-over never stalls an answer.
 */
export class CommandSender implements CommandChannel {
  readonly subjects: Subjects;
  private readonly semaphore: Semaphore;
  private readonly encoder = new TextEncoder();
  private ownerRouteOffUntil = 0;
  private readonly requester: NatsRequester;

  constructor(
    nc: NatsConnection,
    private readonly options: CommandSenderOptions,
  ) {
    this.subjects = subjects(options.prefix);
    this.semaphore = new Semaphore(options.maxInFlight);
    this.requester = new NatsRequester(nc);
  }

  async send(conversationId: string, command: AgentCommand): Promise<AcceptedReply> {
    const data = this.encoder.encode(JSON.stringify(command));
    const deadline = Date.now() + this.options.retryForMs;
    const owner = this.subjects.writer(partitionOf(conversationId), conversationId);
    const anyInstance = this.subjects.agent(conversationId);
    for (let attempt = 1; ; attempt++) {
      let reply: ReceivedAgentReply;
      try {
        reply = await this.request(owner, anyInstance, data);
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await sleep(Math.min(50 * 2 ** attempt, 2_000) * (0.5 + Math.random()));
        continue;
      }
      if (reply.ok) return reply;
      if (isRetryable(reply.error.code) && Date.now() < deadline) {
        await sleep(Math.min(50 * 2 ** attempt, 2_000));
        continue;
      }
      // A code from a newer service is passed on as it is; callers compare codes as strings.
      throw new SeqlineError(reply.error.code as ErrorCode, reply.error.message);
    }
  }

  /** Fails what is still waiting for a reply; the connection is closing. */
  close(): void {
    this.requester.close();
  }

  /** One attempt: to the partition's owner, or to any instance while the partition has no owner or the owner route is off. */
  private async request(owner: string, anyInstance: string, data: Uint8Array): Promise<ReceivedAgentReply> {
    const options = { timeoutMs: this.options.requestTimeoutMs };
    await this.semaphore.acquire();
    try {
      if (Date.now() >= this.ownerRouteOffUntil) {
        try {
          return ReceivedAgentReplySchema.parse((await this.requester.request(owner, data, options)).json());
        } catch (error) {
          if (!(error instanceof NoResponderError)) {
            this.ownerRouteOffUntil = Date.now() + OWNER_ROUTE_BACKOFF_MS;
            throw error;
          }
        }
      }
      return ReceivedAgentReplySchema.parse((await this.requester.request(anyInstance, data, options)).json());
    } finally {
      this.semaphore.release();
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
