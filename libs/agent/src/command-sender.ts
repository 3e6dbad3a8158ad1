import type { NatsConnection } from '@nats-io/transport-node';
import { NatsRequester, NoResponderError, RequesterClosedError } from '@seqline/streams';
import { isRetryable, partitionOf, ReceivedAgentReplySchema, SeqlineError, subjects, ErrorCode, type AgentCommand, type ReceivedAgentReply, type Subjects } from '@seqline/protocol';
import type { AcceptedReply, CommandChannel } from './answer-stream.js';
import { Semaphore } from './semaphore.js';
import { AppendPacer } from './append-pacer.js';

export interface CommandSenderOptions {
  prefix: string;
  maxInFlight: number;
  requestTimeoutMs: number;
  /** How long to keep retrying a command the service did not answer (NATS or all instances down). */
  retryForMs: number;
  /** Hold appends back while the service's round trip is well above its floor (see `AppendPacer`). */
  paceAppends: boolean;
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
  private readonly pacer?: AppendPacer;

  constructor(
    nc: NatsConnection,
    private readonly options: CommandSenderOptions,
  ) {
    this.subjects = subjects(options.prefix);
    this.semaphore = new Semaphore(options.maxInFlight);
    this.requester = new NatsRequester(nc);
    if (options.paceAppends) this.pacer = new AppendPacer();
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
        // Closed: no reply could be received any more, however long this waits.
        if (error instanceof RequesterClosedError) throw new SeqlineError(ErrorCode.Unavailable, 'the agent was closed before the service answered');
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

  /** How long an answer waits after an acknowledgement before its next append. */
  holdMs(): number {
    return this.pacer?.holdMs() ?? 0;
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
          return await this.timedRequest(owner, data, options);
        } catch (error) {
          if (!(error instanceof NoResponderError)) {
            this.ownerRouteOffUntil = Date.now() + OWNER_ROUTE_BACKOFF_MS;
            throw error;
          }
        }
      }
      return await this.timedRequest(anyInstance, data, options);
    } finally {
      this.semaphore.release();
    }
  }

  private async timedRequest(subject: string, data: Uint8Array, options: { timeoutMs: number }): Promise<ReceivedAgentReply> {
    const sentAt = performance.now();
    const reply = await this.requester.request(subject, data, options);
    this.pacer?.observe(performance.now() - sentAt);
    return ReceivedAgentReplySchema.parse(reply.json());
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
