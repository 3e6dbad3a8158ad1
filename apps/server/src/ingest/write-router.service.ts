import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import type { Msg, Subscription } from '@nats-io/transport-node';
import { ErrorCode, parseFrame, partitionOf, ReceivedAgentReplySchema, SeqlineError, toSeqlineError, type AgentReply } from '@seqline/protocol';
import { LogStream, NatsRequester, NoResponderError, PartitionLeases, RequestTimeoutError } from '@seqline/streams';
import type { Logger } from 'pino';
import { LOGGER } from '../core/tokens.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { ConversationWriter, type WriteResult } from './conversation-writer.service.js';
import { IngestCommandSchema, type IngestCommand } from './ingest-command.js';
import { sendReply } from './reply-sender.js';
import { CommandsInFlight, SHED_REPLY } from './commands-in-flight.js';

/** How long an owner has to answer a handed-over write before this instance writes it itself. */
const FORWARD_TIMEOUT_MS = 2_000;
/** While a lease changes hands two instances may both serve a partition for a moment: one queue group, so only one answers each write. */
const FORWARD_QUEUE = 'seqline-writer';

/**
 * Sends each write to the instance owning its conversation's write partition, so one instance
 * at a time writes a conversation whatever the write's source: devices' posts and cancels, and
 * agents on the any-instance subject. (The reaper writes where it runs: it only ends answers
 * silent for the agent lease.) Concurrent writers were always kept apart by
 * JetStream's expected last subject sequence, but a replicated stream on NATS before 2.9.21 can
 * store two writes that name the same predecessor (see docs/production.md), and every writer but
 * the owner works on a colder cache.
 *
 * When no owner answers (none right now, or it hangs), the write is made here: the log's
 * expectation still orders it, and availability does not wait for a lease to lapse.
 */
@Injectable()
export class WriteRouter implements OnApplicationShutdown {
  private readonly requester: NatsRequester;
  private readonly encoder = new TextEncoder();

  constructor(
    private readonly writer: ConversationWriter,
    private readonly partitions: PartitionLeases,
    private readonly stream: LogStream,
    private readonly metrics: MetricsService,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly commandsInFlight: CommandsInFlight,
  ) {
    this.requester = new NatsRequester(stream.nc);
  }

  /** Last: devices and agents are served until their connections and subscriptions are closed. */
  onApplicationShutdown(): void {
    this.requester.close();
  }

  async write(conversationId: string, command: IngestCommand): Promise<WriteResult> {
    const partition = partitionOf(conversationId);
    if (this.partitions.owns(partition)) return { ...(await this.writer.write(conversationId, command)), writer: this.partitions.holder };
    let reply: AgentReply;
    try {
      const subject = this.stream.subjects.forward(partition, conversationId);
      const msg = await this.requester.request(subject, this.encoder.encode(JSON.stringify(command)), { timeoutMs: FORWARD_TIMEOUT_MS });
      reply = readOwnerReply(msg.data);
    } catch (error) {
      if (!(error instanceof NoResponderError) && !(error instanceof RequestTimeoutError)) throw error;
      const outcome = error instanceof NoResponderError ? 'no_owner' : 'owner_timeout';
      this.metrics.writesForwarded.inc({ outcome });
      if (outcome === 'owner_timeout') this.logger.warn({ conversationId, partition }, 'the partition owner did not answer a handed-over write in time; writing it here');
      return this.writer.write(conversationId, command);
    }
    this.metrics.writesForwarded.inc({ outcome: 'owner' });
    if (!reply.ok) throw new SeqlineError(reply.error.code as ErrorCode, reply.error.message, reply.error.messageStatus);
    return { cursor: reply.cursor, duplicate: reply.duplicate, ...(reply.answer ? { answer: reply.answer } : {}), ...(reply.writer ? { writer: reply.writer } : {}) };
  }

  /** Handed-over writes taken and not answered yet. */
  private readonly answering = new Set<Promise<void>>();

  /** Settles once the handed-over writes taken so far are answered (not those taken after). */
  async answered(): Promise<void> {
    await Promise.allSettled([...this.answering]);
  }

  /** Answers writes handed over for a partition this instance owns; the subscription ends with the partition. */
  serve(partition: number): Subscription {
    return this.stream.nc.subscribe(this.stream.subjects.partitionForward(partition), {
      queue: FORWARD_QUEUE,
      callback: (error, msg) => {
        if (error) {
          this.logger.error({ err: error, partition }, 'handed-over write subscription failed');
          return;
        }
        // Counted with the agents' own commands: the instance handing it over answers its agent as told.
        if (!this.commandsInFlight.take(1)) return sendReply(msg, SHED_REPLY, this.stream.nc.info?.max_payload, this.logger);
        const answering = this.answer(msg)
          .finally(() => this.commandsInFlight.release(1))
          .catch((failure: unknown) => this.logger.error({ err: failure, partition }, 'handed-over write failed unexpectedly'))
          .finally(() => this.answering.delete(answering));
        this.answering.add(answering);
      },
    });
  }

  private async answer(msg: Msg): Promise<void> {
    const conversationId = this.stream.subjects.conversationOf(msg.subject);
    let reply: AgentReply;
    try {
      let command: IngestCommand;
      try {
        command = parseFrame(IngestCommandSchema, msg.data, { what: 'a handed-over write' });
      } catch (error) {
        // The instance that handed it over read it as valid: one this version cannot read is
        // another version's (a rolling upgrade), not a bad command, and is worth a retry once the
        // upgrade has gone on, where a refusal for its form would end its answer for good.
        const reason = error instanceof SeqlineError ? error.message : String(error);
        throw new SeqlineError(ErrorCode.Unavailable, `the instance writing this conversation cannot read this command (${reason.slice(0, 200)}), likely another version during an upgrade; retry shortly`);
      }
      const result = await this.writer.write(conversationId, command);
      reply = { ok: true, cursor: result.cursor, duplicate: result.duplicate, ...(result.answer ? { answer: result.answer } : {}), writer: this.partitions.holder };
    } catch (error) {
      if (!(error instanceof SeqlineError)) this.logger.error({ err: error, conversationId }, 'handed-over write failed');
      reply = { ok: false, error: toSeqlineError(error, ErrorCode.Unavailable).toBody() };
    }
    sendReply(msg, reply, this.stream.nc.info?.max_payload, this.logger);
  }
}

/**
 * The owner's answer. One this version cannot read (another version's, in a rolling upgrade) is a
 * passing failure for the writer to retry (with its message id the write is not made twice), not
 * a crash of the request.
 */
export function readOwnerReply(data: Uint8Array): AgentReply {
  try {
    return parseFrame(ReceivedAgentReplySchema, data, { what: "the partition owner's reply" }) as AgentReply;
  } catch (error) {
    const reason = error instanceof SeqlineError ? error.message : String(error);
    throw new SeqlineError(ErrorCode.Unavailable, `the instance writing this conversation answered in a form this one cannot read (${reason.slice(0, 200)}); retry shortly`);
  }
}
