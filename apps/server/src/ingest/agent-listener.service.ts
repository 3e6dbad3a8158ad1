import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { Msg, Subscription } from '@nats-io/transport-node';
import type { Settings } from '@seqline/config';
import { AgentCommandSchema, ErrorCode, ID_PATTERN, isKnownErrorCode, parseFrame, SeqlineError, splitCommandBatch, toSeqlineError, type AgentReply } from '@seqline/protocol';
import { LogStream, PartitionLeases } from '@seqline/streams';
import type { Logger } from 'pino';
import { LOGGER, SETTINGS } from '../core/tokens.js';
import { WriteRouter } from './write-router.service.js';
import { CommandsInFlight, SHED_REPLY } from './commands-in-flight.js';
import { ConversationWriter } from './conversation-writer.service.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { RateLimiter } from '../auth/rate-limiter.js';
import { sendBatchReply, sendReply } from './reply-sender.js';
import { within } from '../core/within.js';
import { LogThrottle } from '../core/log-throttle.js';

const QUEUE = 'seqline-ingest';
const OWNER_QUEUE = 'seqline-writer';

type Route = 'owner' | 'any' | 'batch';
/**
 * How long a batch's reply waits for its slowest command: a write takes a few milliseconds, and
 * every other answer in the batch waits for its reply. One still being written by then is
 * answered `UNAVAILABLE`, and its agent sends it again on its own (idempotent: applied once).
 */
const BATCH_LINE_WAIT_MS = 250;
const STILL_WRITING: AgentReply = {
  ok: false,
  error: { code: ErrorCode.Unavailable, message: `not written within ${BATCH_LINE_WAIT_MS} ms of the batch; send it again on its own` },
};
/** How long a released partition's subscriptions may take to drain (no longer while NATS is away: renewals wait on it). */
const DRAIN_WAIT_MS = 2_000;
/** Refusals of one code are logged once per this interval with a count: an agent over its rate is refused thousands of times a second. */
const REFUSAL_LOG_MS = 5_000;
/**
 * At shutdown, how long commands already taken may take to be answered. One not answered by
 * then is retried by its agent on another instance, under the same message id.
 */
const ANSWER_WAIT_MS = 5_000;

/** Drains a subscription, or ends it outright if draining has not finished in `ms` (a drain waits for NATS, which may be away). */
async function drainWithin(subscription: Subscription, ms: number): Promise<void> {
  // A drain that fails has ended the subscription already; only one still going is cut short.
  await within(subscription.drain().catch(() => undefined), ms).catch(() => subscription.unsubscribe());
}

/**
 * Answers agents' commands. The instance owning a conversation's write partition answers on
 * `<prefix>.writer.<partition>.<conversation>`, so one conversation's writes stay on one
 * instance and its cached state stays current. Every instance also answers the any-instance
 * subject `<prefix>.agent.<conversation>` (one queue group), for agents that do not know the
 * partitioning and agents whose partition has no owner for the moment: the command goes on to
 * the owner through `WriteRouter`, or is written here when there is none.
 */
@Injectable()
export class AgentListener implements OnApplicationBootstrap, OnApplicationShutdown {
  private subscription?: Subscription;
  /** Batches addressed to this instance, as the writer its replies named (`<prefix>.writer.batch.<holder>`). */
  private batches?: Subscription;
  /** Per owned partition: its agent subject and its subject for writes handed over by other instances. */
  private readonly owned = new Map<number, Subscription[]>();
  private readonly limiter: RateLimiter;
  /** Per refusal code (and one for commands that failed below the protocol): when it was last logged. */
  private readonly refusalLogs = new Map<string, LogThrottle>();
  /** Commands taken and not answered yet, so a shutdown can let them finish. */
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly stream: LogStream,
    private readonly router: WriteRouter,
    private readonly writer: ConversationWriter,
    private readonly metrics: MetricsService,
    private readonly partitions: PartitionLeases,
    @Inject(SETTINGS) private readonly settings: Settings,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly commandsInFlight: CommandsInFlight,
  ) {
    this.limiter = new RateLimiter(settings.limits.agentCommandsPerSecond);
  }

  onApplicationBootstrap(): void {
    this.subscription = this.listen(this.stream.subjects.allAgent, QUEUE, 'any');
    this.batches = this.listen(this.stream.subjects.writerBatch(this.partitions.holder), undefined, 'batch');
    this.partitions.start({
      acquired: (partition) => {
        // States cached while another instance owned it (a write that fell back to this one, the
        // reaper) went stale meanwhile, and the events since may have expired from the log: the
        // first write rebuilds from Postgres instead of catching up over a gap it cannot see.
        this.writer.forgetPartition(partition);
        this.owned.set(partition, [this.listen(this.stream.subjects.partitionWriter(partition), OWNER_QUEUE, 'owner'), this.router.serve(partition)]);
        this.metrics.writePartitions.set(this.owned.size);
        this.logger.debug({ partition }, 'write partition acquired');
      },
      released: async (partition) => {
        const subscriptions = this.owned.get(partition) ?? [];
        this.owned.delete(partition);
        this.metrics.writePartitions.set(this.owned.size);
        await Promise.all(subscriptions.map((subscription) => drainWithin(subscription, DRAIN_WAIT_MS)));
        // Writes already taken finish before the lease goes: the next owner would otherwise race
        // them (conflicts, retries), and a state built meanwhile would stay cached here.
        await within(this.answered(), DRAIN_WAIT_MS).catch(() => undefined);
        this.writer.forgetPartition(partition);
        this.logger.debug({ partition }, 'write partition released');
      },
    });
  }

  async onApplicationShutdown(): Promise<void> {
    // Partitions first, so agents move to the any-instance subject (other instances) while this one drains.
    await this.partitions.stop();
    await Promise.all([this.subscription, this.batches].map((subscription) => subscription && drainWithin(subscription, DRAIN_WAIT_MS)));
    await within(this.answered(), ANSWER_WAIT_MS).catch(() => {
      this.logger.warn({ commands: this.inFlight.size }, 'shutting down with agent commands unanswered; their agents retry them elsewhere');
    });
  }

  /** Settles once the commands taken so far, and the writes handed over to this instance, are answered. */
  private async answered(): Promise<void> {
    await Promise.allSettled([...this.inFlight, this.router.answered()]);
  }

  private listen(subject: string, queue: string | undefined, route: Route): Subscription {
    return this.stream.nc.subscribe(subject, {
      ...(queue ? { queue } : {}),
      callback: (error, msg) => {
        if (error) {
          this.logger.error({ err: error, subject }, 'agent subscription failed');
          return;
        }
        let lines: ReturnType<typeof splitCommandBatch> | undefined;
        if (route === 'batch') {
          try {
            lines = splitCommandBatch(msg.data);
          } catch (error) {
            // Only a batch that cannot be split into lines is refused as a whole.
            return this.refuseBatch(msg, error);
          }
        }
        const commands = lines?.length ?? 1;
        // However fast agents send (or one floods), what waits here for the log or Postgres is bounded: past it, agents retry with back-off.
        if (!this.commandsInFlight.take(commands)) return this.shed(msg, route, commands);
        // Counted until written, not until answered: a batch is answered within 250 ms, its slow lines still being written.
        const release = (): void => this.commandsInFlight.release(commands);
        const handling = (route === 'batch' ? this.handleBatch(msg, lines!, release) : this.handle(msg, route).finally(release))
          .catch((failure: unknown) => this.logger.error({ err: failure, subject: msg.subject }, 'agent command failed unexpectedly'))
          .finally(() => this.inFlight.delete(handling));
        this.inFlight.add(handling);
      },
    });
  }

  private async handle(msg: Msg, route: Exclude<Route, 'batch'>): Promise<void> {
    this.metrics.commandsByRoute.inc({ route });
    const conversationId = this.stream.subjects.conversationOf(msg.subject);
    // Refused as a batch line naming it would be: no lookup for an id no conversation can have.
    const reply = ID_PATTERN.test(conversationId)
      ? await this.execute(conversationId, msg.data)
      : { ok: false as const, error: new SeqlineError(ErrorCode.BadFrame, `"${conversationId.slice(0, 140)}" in the subject is not a conversation id (1-128 characters of A-Z a-z 0-9 _ -)`).toBody() };
    if (!reply.ok) this.refused(reply.error.code, conversationId);
    sendReply(msg, reply, this.stream.nc.info?.max_payload, this.logger);
  }

  /**
   * A batch: each line is handled as the same command sent on its own (its own rate limit, size
   * check and write, the partition's owner writing it), all at once, and answered together in the
   * batch's order. Only a batch that cannot be split into lines is refused as a whole.
   */
  private async handleBatch(msg: Msg, lines: ReturnType<typeof splitCommandBatch>, written: () => void): Promise<void> {
    this.metrics.commandsByRoute.inc({ route: 'batch' }, lines.length);
    const replies = new Array<AgentReply | undefined>(lines.length).fill(undefined);
    const answered = Promise.all(
      lines.map(async (line, index) => {
        const reply = line instanceof SeqlineError ? { ok: false as const, error: line.toBody() } : await this.execute(line.conversationId, line.data, true);
        if (!reply.ok) this.refused(reply.error.code, line instanceof SeqlineError ? undefined : line.conversationId);
        replies[index] = reply;
      }),
    );
    // Lines still being written after the reply are still waited for at shutdown.
    const writing = answered
      .then(() => undefined)
      .finally(() => {
        written();
        this.inFlight.delete(writing);
      });
    this.inFlight.add(writing);
    // One slow command (looked at again, a state rebuilt from Postgres) must not hold up the others' replies.
    await within(answered, BATCH_LINE_WAIT_MS).catch(() => undefined);
    const late = replies.filter((reply) => reply === undefined).length;
    if (late > 0) this.refused(ErrorCode.Unavailable, undefined, late);
    sendBatchReply(msg, { replies: replies.map((reply) => reply ?? STILL_WRITING) }, this.logger);
  }

  private async execute(conversationId: string, data: Uint8Array, batched = false): Promise<AgentReply> {
    try {
      // Per conversation: an agent flooding one conversation slows no other.
      if (!this.limiter.take(conversationId)) {
        throw new SeqlineError(ErrorCode.RateLimited, `over ${this.settings.limits.agentCommandsPerSecond} commands per second for this conversation; retry shortly`);
      }
      const command = parseFrame(AgentCommandSchema, data, { what: 'command', maxBytes: this.settings.limits.frameBytes });
      // Its reply carries the answer so far, which may take the whole of a NATS message.
      if (batched && command.type === 'message.start') throw new SeqlineError(ErrorCode.ValidationFailed, 'message.start cannot be batched: send it on its own');
      // Written here when this instance owns the partition; otherwise handed to its owner, if there is one.
      const result = await this.router.write(conversationId, command);
      return { ok: true, cursor: result.cursor, duplicate: result.duplicate, ...(result.answer ? { answer: result.answer } : {}), ...(result.writer ? { writer: result.writer } : {}) };
    } catch (error) {
      if (!(error instanceof SeqlineError)) {
        const suppressed = this.throttle('failed').pass();
        if (suppressed !== undefined) this.logger.error({ err: error, conversationId, suppressed }, 'agent command failed');
      }
      // What fails below the protocol here is the log or the database: a retry may succeed.
      return { ok: false, error: toSeqlineError(error, ErrorCode.Unavailable).toBody() };
    }
  }

  private refuseBatch(msg: Msg, error: unknown): void {
    const refusal = toSeqlineError(error);
    this.refused(refusal.code);
    sendReply(msg, { ok: false, error: refusal.toBody() }, this.stream.nc.info?.max_payload, this.logger);
  }

  /** Refuses what arrived past the limit, as each of its commands would be refused: retryable. */
  private shed(msg: Msg, route: Route, commands: number): void {
    this.refused(ErrorCode.Unavailable, undefined, commands);
    if (route === 'batch') sendBatchReply(msg, { replies: Array.from({ length: commands }, () => SHED_REPLY) }, this.logger);
    else sendReply(msg, SHED_REPLY, this.stream.nc.info?.max_payload, this.logger);
  }

  /**
   * Counts a refusal under its code (one this version does not know, from an owner of a newer
   * version, as `other`: a label takes no value from outside) and logs it, at most once per
   * code and interval, with how many were not logged since.
   */
  private refused(code: string, conversationId?: string, count = 1): void {
    this.metrics.commandsRefused.inc({ code: isKnownErrorCode(code) ? code : 'other' }, count);
    const suppressed = this.throttle(code).pass();
    if (suppressed !== undefined) this.logger.info({ conversationId: conversationId?.slice(0, 140), code: code.slice(0, 64), suppressed }, 'agent command refused');
  }

  private throttle(kind: string): LogThrottle {
    const key = isKnownErrorCode(kind) || kind === 'failed' ? kind : 'other';
    let throttle = this.refusalLogs.get(key);
    if (!throttle) this.refusalLogs.set(key, (throttle = new LogThrottle(REFUSAL_LOG_MS)));
    return throttle;
  }
}
