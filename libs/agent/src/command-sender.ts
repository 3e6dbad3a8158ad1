import type { NatsConnection } from '@nats-io/transport-node';
import { NatsRequester, NoResponderError, RequestTimeoutError, RequesterClosedError } from '@seqline/streams';
import {
  encodeCommandBatch,
  ErrorCode,
  isRetryable,
  MAX_BATCH_COMMANDS,
  NATS_DEFAULT_MAX_PAYLOAD,
  partitionOf,
  ReceivedAgentReplySchema,
  ReceivedBatchReplySchema,
  SeqlineError,
  subjects,
  type AgentCommand,
  type ReceivedAgentReply,
  type Subjects,
} from '@seqline/protocol';
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
  /** Send the commands ready at one moment for conversations one instance writes as one request. */
  batchCommands: boolean;
}

/** After the owner subject failed other than by having no owner (a timeout, a permission), use the any-instance subject this long. */
const OWNER_ROUTE_BACKOFF_MS = 10_000;
/** Larger commands go on their own: a batch stays far below NATS's `max_payload`. */
const BATCH_COMMAND_BYTES = 16 * 1024;
const BATCH_BYTES = 256 * 1024;
const BATCH_TIMEOUT_FLOOR_MS = 1_000;
interface Batched {
  conversationId: string;
  data: Uint8Array;
  /** The command's reply, or undefined when the batch went unanswered (it is then sent on its own). */
  settle(reply: ReceivedAgentReply | undefined): void;
}

/**
 * Sends commands as NATS requests, retrying unanswered ones; retries are safe because every
 * command is idempotent. A command goes to the instance owning its conversation's write
 * partition; while the partition has no owner (an instance died or is handing over) it goes to
 * any instance instead, so a hand-over never stalls an answer.
 *
 * Replies name the instance writing the conversation. Commands other than starts that become
 * ready at the same moment (one event-loop turn: the appends of answers whose acknowledgements
 * came together) for conversations one instance writes go to it as one batch: one request and
 * one reply for many answers' appends, where each would otherwise cost its own.
 */
export class CommandSender implements CommandChannel {
  readonly subjects: Subjects;
  private readonly semaphore: Semaphore;
  private readonly encoder = new TextEncoder();
  private ownerRouteOffUntil = 0;
  private readonly requester: NatsRequester;
  private readonly pacer?: AppendPacer;
  /** Per write partition, the instance its last reply named as writing it. */
  private readonly writers = new Map<number, string>();
  /** Commands waiting for this turn's batches, per writer. */
  private readonly batches = new Map<string, Batched[]>();
  private flushing = false;

  constructor(
    private readonly nc: NatsConnection,
    private readonly options: CommandSenderOptions,
  ) {
    this.subjects = subjects(options.prefix);
    this.semaphore = new Semaphore(options.maxInFlight);
    this.requester = new NatsRequester(nc);
    if (options.paceAppends) this.pacer = new AppendPacer();
  }

  /**
   * Sends `command`, retrying while the service does not answer or answers a retryable refusal.
   * `stop` ends the retries: what has been sent may still be applied, but nothing is sent again.
   */
  async send(conversationId: string, command: AgentCommand, stop?: AbortSignal): Promise<AcceptedReply> {
    const data = this.encoder.encode(JSON.stringify(command));
    const deadline = performance.now() + this.options.retryForMs;
    const partition = partitionOf(conversationId);
    const owner = this.subjects.writer(partition, conversationId);
    const anyInstance = this.subjects.agent(conversationId);
    const batchable = this.options.batchCommands && command.type !== 'message.start' && data.length <= BATCH_COMMAND_BYTES;
    for (let attempt = 1; ; attempt++) {
      let reply: ReceivedAgentReply | undefined;
      try {
        // Retries go on their own, to the owner's subject: whatever kept the batch from an answer may still hold.
        if (attempt === 1 && batchable) reply = await this.batched(partition, conversationId, data);
        reply ??= await this.request(owner, anyInstance, data);
      } catch (error) {
        // Closed: no reply could be received any more, however long this waits.
        if (error instanceof RequesterClosedError) throw new SeqlineError(ErrorCode.Unavailable, 'the agent was closed before the service answered');
        // Said as the service's own refusals are, so callers (and prompt settlement) judge one code.
        if (performance.now() > deadline) throw new SeqlineError(ErrorCode.Unavailable, `the service did not answer for ${this.options.retryForMs} ms (${(error as Error).message})`);
        await sleep(Math.min(50 * 2 ** attempt, 2_000) * (0.5 + Math.random()));
        if (stop?.aborted) throw stop.reason;
        continue;
      }
      if (reply.ok) {
        if (reply.writer) this.writers.set(partition, reply.writer);
        else this.writers.delete(partition);
        return reply;
      }
      if (isRetryable(reply.error.code) && performance.now() < deadline) {
        await sleep(Math.min(50 * 2 ** attempt, 2_000));
        if (stop?.aborted) throw stop.reason;
        continue;
      }
      // A code from a newer service is passed on as it is; callers compare codes as strings.
      throw new SeqlineError(reply.error.code as ErrorCode, reply.error.message, reply.error.messageStatus);
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

  /** Queues the command for this turn's batch to the instance writing its conversation; undefined at once when none is known. */
  private batched(partition: number, conversationId: string, data: Uint8Array): Promise<ReceivedAgentReply | undefined> | undefined {
    const writer = this.writers.get(partition);
    if (writer === undefined || performance.now() < this.ownerRouteOffUntil) return undefined;
    return new Promise((settle) => {
      const queue = this.batches.get(writer);
      if (queue) queue.push({ conversationId, data, settle });
      else this.batches.set(writer, [{ conversationId, data, settle }]);
      if (!this.flushing) {
        this.flushing = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushing = false;
    // A batch takes a permit per command and waits until that many are free: at most a quarter of
    // them, so single commands (starts, retries) around it never hold a batch back for long.
    const most = Math.min(MAX_BATCH_COMMANDS, Math.floor(this.semaphore.size / 4));
    const maxBytes = Math.min(BATCH_BYTES, (this.nc.info?.max_payload ?? NATS_DEFAULT_MAX_PAYLOAD) - 1024);
    for (const [writer, queue] of this.batches) {
      this.batches.delete(writer);
      let batch: Batched[] = [];
      let bytes = 0;
      for (const item of queue) {
        const size = item.conversationId.length + item.data.length + 2;
        if (batch.length >= most || (batch.length > 0 && bytes + size > maxBytes)) {
          this.sendOrSettle(writer, batch);
          batch = [];
          bytes = 0;
        }
        batch.push(item);
        bytes += size;
      }
      this.sendOrSettle(writer, batch);
    }
  }

  private sendOrSettle(writer: string, batch: Batched[]): void {
    // A command alone costs the same on its own subject.
    if (batch.length < 2) for (const item of batch) item.settle(undefined);
    else void this.sendBatch(writer, batch);
  }

  /** Never rejects: a batch that went unanswered or came back unreadable leaves each command to be sent on its own. */
  private async sendBatch(writer: string, batch: Batched[]): Promise<void> {
    let replies: ReceivedAgentReply[] | undefined;
    await this.semaphore.acquire(batch.length);
    try {
      const sentAt = performance.now();
      // The service answers a batch within 250 ms of taking it, slow commands then refused: a
      // shorter timeout would resend every command of a batch that one slow command held.
      const timeoutMs = Math.max(this.options.requestTimeoutMs, BATCH_TIMEOUT_FLOOR_MS);
      const msg = await this.requester.request(this.subjects.writerBatch(writer), encodeCommandBatch(batch), { timeoutMs });
      const parsed = ReceivedBatchReplySchema.safeParse(msg.json());
      if (parsed.success && parsed.data.replies.length === batch.length) replies = parsed.data.replies;
      // Each command's round trip, as if sent on its own: the pacer weighs the queues by replies.
      // A batch that waited on a slow command says nothing of the queues.
      if (replies?.every((reply) => reply.ok)) {
        const roundTripMs = performance.now() - sentAt;
        for (let i = 0; i < batch.length; i++) this.pacer?.observe(roundTripMs);
      }
    } catch (error) {
      // No responders (the instance is gone), a refused or unreadable batch: below. A timeout says
      // the instance hangs: the commands go to any instance, as after a timeout on the owner's subject.
      if (error instanceof RequestTimeoutError) this.ownerRouteOffUntil = performance.now() + OWNER_ROUTE_BACKOFF_MS;
    } finally {
      this.semaphore.release(batch.length);
    }
    if (!replies) {
      // Until a reply names a writer again, these conversations' commands go on their own.
      for (const [partition, named] of this.writers) if (named === writer) this.writers.delete(partition);
    }
    batch.forEach((item, i) => item.settle(replies?.[i]));
  }

  /** One attempt: to the partition's owner, or to any instance while the partition has no owner or the owner route is off. */
  private async request(owner: string, anyInstance: string, data: Uint8Array): Promise<ReceivedAgentReply> {
    const options = { timeoutMs: this.options.requestTimeoutMs };
    await this.semaphore.acquire();
    try {
      if (performance.now() >= this.ownerRouteOffUntil) {
        try {
          return await this.timedRequest(owner, data, options);
        } catch (error) {
          if (!(error instanceof NoResponderError)) {
            this.ownerRouteOffUntil = performance.now() + OWNER_ROUTE_BACKOFF_MS;
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
