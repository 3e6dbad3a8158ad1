import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { AckPolicy, DeliverPolicy, jetstream, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import type { Settings } from '@seqline/config';
import { epochIsBefore, isSetWhole } from '@seqline/protocol';
import { applyEntry, chainStep, messageKey, MessageRepository, walkChain, type ChainWalk, type ConversationState, type LogHole, type MessageState, type MessageWrite } from '@seqline/persistence';
import { ConversationLog, decodeEntry, Lease, LogStream, PERSISTER_CONSUMER, persisterLag, retryTransient, UndecodableEventError, watchConsume, type ConsumeWatch, type LogEntry, type PersisterLag } from '@seqline/streams';
import type { Logger } from 'pino';
import { LOGGER, SETTINGS } from '../core/tokens.js';
import { SharedRead } from '../core/shared-read.js';
import { within } from '../core/within.js';
import { MetricsService } from '../metrics/metrics.service.js';

/** How long an event waits before another try when its predecessor in the conversation is not applied yet. */
const DEFER_MS = 500;
const STALL_WARN_EVERY = 60;
/**
 * Deliveries after which an event still waiting for its predecessor reads the missing events
 * from the log itself. A replicated consumer can lose track of a delivery across a leader change
 * (it counts an event as acknowledged that was never written), and that event never comes back.
 */
const REFILL_AFTER_DELIVERIES = 4;
/** How long one batch may take to be written before the consume is closed until it is. */
const PAUSE_CONSUMING_AFTER_MS = 5_000;
/**
 * Events one read from the log brings to fill a gap. A longer gap is filled a read at a time:
 * each applies the unbroken piece it read, and the waiting event's next delivery reads on.
 */
const REFILL_MAX_EVENTS = 10_000;
/**
 * After a read from the log could not fill a conversation's gap (its chain forks), the next try
 * waits this long: every event queued behind the gap comes back each `DEFER_MS`, and each would
 * otherwise read the same events again.
 */
const REFILL_RETRY_MS = 5_000;
/**
 * A batch is written no sooner than this many times the last one took after it: on a busy
 * machine, where each write takes longer, batches grow instead of taking more of the CPU the
 * live path needs (at most about a fifth of the time goes to writing), up to `MAX_FLUSH_DELAY_MS`.
 */
const FLUSH_SPACING = 4;
/** Well inside the consumer's 10 s `ack_wait`, so buffered events are never delivered again meanwhile. */
const MAX_FLUSH_DELAY_MS = 1_000;
/** How long a stopping persister waits for Postgres to take what it buffered (well inside SHUTDOWN_TIMEOUT). */
const FINAL_FLUSH_MS = 10_000;
/** The consume's idle heartbeat, its pulls' lifetime, and the silence past which it is set up again. */
const CONSUME_HEARTBEAT_MS = 1_000;
const CONSUME_EXPIRES_MS = 5_000;
const CONSUME_SILENCE_MS = 3 * CONSUME_HEARTBEAT_MS;

/**
 * A conversation none of whose events the persister has applied for this long is looked at once
 * in the log: its last event there must be in Postgres (see `checkQuiet`).
 */
const QUIET_MS = 3_000;
/** Conversations waiting to be looked at again (see `recheck`); past this, the next are dropped until a check ran. */
const MAX_RECHECKS = 10_000;
/** Log lookups of a quiet check in flight at once: every conversation due is looked at, this many at a time. */
const QUIET_LOOKUPS_AT_ONCE = 100;

/**
 * What the persister needs of a delivered event: one the consumer delivered, or a conversation's
 * last event read from the log by `checkQuiet`.
 */
type PersistItem = Pick<JsMsg, 'subject' | 'seq' | 'data' | 'ack' | 'nak' | 'term'> & { info: Pick<JsMsg['info'], 'deliveryCount'> };

/**
 * Materialises the log into Postgres: one row per message, updated in batches (every flush
 * interval or batch size), never one write per token. A shared durable consumer remembers what
 * is done, so after any restart or failover the work resumes from the log.
 *
 * Events are applied strictly along each conversation's `prev` chain: an event applies only if
 * its predecessor is the conversation's watermark. One already applied (a redelivery) is
 * acknowledged and skipped; one whose predecessor is still in the log but not applied (pending on
 * an instance that died) is handed back for later, and once it has come back a few times the
 * missing events are read from the log itself. What the log no longer holds, or cannot be
 * decoded, is recorded as a hole and stepped over (see `write`). Only the instance holding the
 * leadership lease consumes.
 */
@Injectable()
export class LogPersister implements OnApplicationBootstrap, OnApplicationShutdown {
  private messages?: ConsumerMessages;
  private buffer: PersistItem[] = [];
  /** A batch is being written: the consume may rightly be quiet meanwhile. */
  private writing = false;
  /**
   * The log epoch the buffered events were consumed in, and the one they are written under: the
   * buffer is emptied when the epoch changes, and takes only events consumed in the current one.
   */
  private bufferEpoch = '';
  private flushing: Promise<void> = Promise.resolve();
  /** Set while a batch has taken long to write: no consume pulls meanwhile. */
  private consumingPaused = false;
  private timer?: NodeJS.Timeout;
  /** How long the last batch took to write: the next waits at least `FLUSH_SPACING` times that. */
  private lastWriteMs = 0;
  private stopped = false;
  /** Stopping, the last batch was not written in time: it is not tried again. */
  private finalFlushAbandoned = false;
  private running?: Promise<void>;
  private stopFollowingEpoch?: () => void;
  private stopFollowingLeadership?: () => void;
  /** Conversations whose gap a read from the log could not fill, and when that was tried. */
  private readonly refillFailedAt = new Map<string, number>();
  /** Conversations with events applied lately, and when the last was, oldest first (see `checkQuiet`). */
  private readonly applied = new Map<string, number>();
  /** Conversations the next quiet check looks at whenever they were last applied (see `recheck`). */
  private readonly rechecks = new Set<string>();
  private quietChecks?: NodeJS.Timeout;
  /** Readiness probes and scrapes need no credentials: however many, the stream is read for the lag once a second. */
  private readonly lagRead = new SharedRead(async () => {
    const lag = await persisterLag(this.stream);
    this.metrics.persisterLagEvents.set(lag.events);
    this.metrics.persisterLagSeconds.set(lag.seconds);
    return lag;
  }, 1_000);

  constructor(
    private readonly stream: LogStream,
    private readonly log: ConversationLog,
    private readonly repository: MessageRepository,
    private readonly metrics: MetricsService,
    private readonly leadership: Lease,
    @Inject(SETTINGS) private readonly settings: Settings,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.ensureConsumer();
    // Rows written before watermarks carried their epoch count in the log as it is now.
    await this.repository.bindEpoch(this.stream.epoch);
    this.stopFollowingLeadership = this.leadership.onChange((held) => {
      this.metrics.leadershipChanges.inc({ held: String(held) });
      if (held) this.startConsuming();
      else void this.messages?.close();
    });
    // The consumer and what it delivered went with the old stream: drop both and consume the new
    // one (the loop creates the consumer again).
    this.stopFollowingEpoch = this.stream.onEpochChange(() => {
      this.buffer = [];
      void this.messages?.close();
    });
    if (this.leadership.held) this.startConsuming();
    this.quietChecks = setInterval(() => {
      this.checkQuiet().catch((error: unknown) => this.logger.warn({ err: error }, 'could not check quiet conversations against the log'));
    }, QUIET_MS);
    this.quietChecks.unref();
    this.checkRetention().catch((error: unknown) => this.logger.warn({ err: error }, 'could not check the persister lag against retention'));
  }

  /** The shared durable consumer; created again after the stream was recreated (it went with it). */
  private async ensureConsumer(): Promise<void> {
    await retryTransient(() =>
      this.stream.jsm.consumers.add(this.stream.name, {
        durable_name: PERSISTER_CONSUMER,
        filter_subject: this.stream.subjects.allLogs,
        deliver_policy: DeliverPolicy.All,
        ack_policy: AckPolicy.Explicit,
        // Events a dead instance had taken come back this soon.
        ack_wait: 10_000_000_000,
        max_ack_pending: 20_000,
      }),
    ).catch(async (error: unknown) => {
      if (!(await this.stream.jsm.consumers.info(this.stream.name, PERSISTER_CONSUMER).catch(() => null))) throw error;
    });
  }

  /**
   * Warns at start when the oldest event not yet in Postgres is closer to expiring than the lag
   * health tolerates: past retention it would become a hole.
   */
  async checkRetention(): Promise<void> {
    const lag = await this.lag();
    const retentionSeconds = this.settings.log.retentionMs / 1000;
    if (lag.seconds > retentionSeconds - this.settings.persist.lagDegradedSeconds) {
      this.logger.error({ lagSeconds: lag.seconds, retentionSeconds }, 'the persister is so far behind that events may expire from the log before Postgres gets them (see LOG_RETENTION)');
    }
  }

  private startConsuming(): void {
    if (this.running || this.stopped) return;
    this.logger.info('persister leadership acquired');
    this.running = this.run().finally(() => {
      this.running = undefined;
      if (this.leadership.held && !this.stopped) this.startConsuming();
    });
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopped = true;
    clearInterval(this.quietChecks);
    this.stopFollowingEpoch?.();
    this.stopFollowingLeadership?.();
    const finalFlush = (async () => {
      await this.messages?.close();
      await this.running;
      await this.flush();
    })();
    // Postgres hung: what is not written is not acknowledged either, so the next persister gets it
    // again; waiting longer would only hold the lease, and every other instance's persisting, up.
    const timedOut = new Error('the last batch was not written in time');
    try {
      await within(finalFlush, FINAL_FLUSH_MS, () => timedOut);
    } catch (error) {
      if (error !== timedOut) throw error;
      this.finalFlushAbandoned = true;
      this.logger.warn({ waitedMs: FINAL_FLUSH_MS }, 'Postgres did not take the last batch in time; its events are left to the next persister');
    }
  }

  /** How far Postgres is behind the log (see `persisterLag`); also kept in the lag metrics. */
  lag(): Promise<PersisterLag> {
    return this.lagRead.get();
  }

  /** Consumes until shutdown, setting the consume loop up again after any failure. */
  private async run(): Promise<void> {
    const js = jetstream(this.stream.nc);
    while (!this.stopped && this.leadership.held) {
      try {
        // A batch still being written (Postgres away) is written before anything more is pulled.
        await this.flushing;
        await this.stream.refresh();
        const epoch = this.stream.epoch;
        await this.ensureConsumer();
        const consumer = await js.consumers.get(this.stream.name, PERSISTER_CONSUMER);
        // Heartbeats every second, so a consumer that went quiet (its leader gone with the pulls it held) is noticed in seconds, not in 30-45.
        const messages = await consumer.consume({ max_messages: this.settings.persist.batchEvents * 2, idle_heartbeat: CONSUME_HEARTBEAT_MS, expires: CONSUME_EXPIRES_MS });
        this.messages = messages;
        // The lease went, or the log was recreated, while this consume was being set up: their listeners closed only the one before.
        // Or consuming was paused meanwhile (a batch taking long) before this consume could be closed with the one before.
        if (!this.leadership.held || this.stopped || this.stream.epoch !== epoch || this.consumingPaused) void messages.close();
        const watch = watchConsume(messages, {
          heartbeatMs: CONSUME_HEARTBEAT_MS,
          silenceMs: CONSUME_SILENCE_MS,
          busy: () => this.writing || this.buffer.length > 0,
          onEnd: (reason) => this.logger.warn({ reason }, 'persister consumer gone or silent; setting it up again'),
        });
        try {
          await this.take(messages, epoch, watch);
        } finally {
          watch.stop();
        }
      } catch (error) {
        if (!this.stopped) this.logger.warn({ err: error }, 'persister consume failed; restarting');
      }
      if (!this.stopped && this.leadership.held) await new Promise((resolve) => setTimeout(resolve, 500));
    }
    await this.flush();
  }

  /** Buffers what a consume delivers, writing a batch whenever one is full (or after a short wait). */
  private async take(messages: ConsumerMessages, epoch: string, watch: ConsumeWatch): Promise<void> {
    for await (const msg of messages) {
      watch.heard();
      // Closing a consume only queues its end behind the events it has received: after the log
      // was recreated, those are still the old log's, whose sequences mean nothing in the new one.
      if (this.stream.epoch !== epoch) continue;
      this.bufferEpoch = epoch;
      this.buffer.push(msg);
      if (this.buffer.length >= this.settings.persist.batchEvents) await this.flush();
      else this.timer ??= setTimeout(() => void this.flush(), Math.max(this.settings.persist.flushIntervalMs, Math.min(MAX_FLUSH_DELAY_MS, FLUSH_SPACING * this.lastWriteMs)));
    }
  }

  /** Writes what is buffered; flushes never overlap, and events are acknowledged only once written. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      clearTimeout(this.timer);
      this.timer = undefined;
      const batch = this.buffer;
      const epoch = this.bufferEpoch;
      this.buffer = [];
      if (batch.length === 0) return;
      // Postgres failing or not answering for more than a moment: the consume would go on pulling
      // events, and JetStream on redelivering every unacknowledged one each ack wait, all queued
      // in memory behind this batch. It is closed, and set up again once this batch is written
      // (what it had received still comes first).
      const pausing = setTimeout(() => {
        this.logger.warn({ events: batch.length }, 'persisting a batch is taking long; consuming paused until it is written');
        this.consumingPaused = true;
        void this.messages?.close();
      }, PAUSE_CONSUMING_AFTER_MS);
      this.writing = true;
      try {
        await this.writeBatch(batch, epoch);
      } finally {
        this.writing = false;
        clearTimeout(pausing);
        this.consumingPaused = false;
      }
    });
    return this.flushing;
  }

  /** Writes one batch until it is written, retrying every failure (Postgres away), then settles its events. */
  private async writeBatch(batch: PersistItem[], epoch: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      // The log was recreated since: this batch's events are the old log's (whose consumer went
      // with it), and applied now they would count in the new one.
      if (this.stream.epoch !== epoch) return;
      try {
        const started = performance.now();
        const outcomes = await this.write(batch, epoch);
        this.lastWriteMs = performance.now() - started;
        for (const [i, msg] of batch.entries()) this.settle(msg, outcomes[i]!);
        return;
      } catch (error) {
        this.metrics.persistFlushFailures.inc();
        this.logger.warn({ err: error, attempt, events: batch.length }, 'persisting a batch failed; retrying');
        await new Promise((resolve) => setTimeout(resolve, Math.min(200 * attempt, 2_000)));
        if (this.stopped && (attempt > 3 || this.finalFlushAbandoned)) return;
      }
    }
  }

  private settle(msg: PersistItem, outcome: Outcome): void {
    switch (outcome) {
      case 'done':
        msg.ack();
        return;
      case 'skipped':
        // An event that can never be applied: ended for good, never retried.
        msg.term();
        return;
      case 'deferred':
        msg.nak(DEFER_MS);
        // Normally a predecessor turns up within seconds; one that never does means the database
        // does not match the log (for instance a fresh database on an old stream: run `seqline repair`).
        if (msg.info.deliveryCount % STALL_WARN_EVERY === 0) {
          this.logger.warn({ subject: msg.subject, seq: msg.seq, deliveries: msg.info.deliveryCount }, 'log event still waits for its predecessor in Postgres');
        }
        return;
      default: {
        const unreachable: never = outcome;
        return unreachable;
      }
    }
  }

  /**
   * Applies what follows each conversation's watermark, in one transaction, and says for each
   * message of the batch what became of it. Along each conversation's `prev` chain:
   * - an event right after the watermark is applied (one of an unknown type only moves it);
   * - one whose predecessor is gone from the log (retention) records a hole and is applied;
   * - an undecodable one right after the watermark records a hole and moves the watermark past it;
   * - one whose predecessor is still in the log but not applied yet waits; from its fourth delivery
   *   the events it waits for are read from the log and applied first, when they chain unbroken
   *   (a gap longer than one read is filled over several deliveries).
   */
  private async write(batch: PersistItem[], epoch: string): Promise<Outcome[]> {
    const items = batch.map((msg) => this.decode(msg));
    const ids = [...new Set(items.map((item) => item.conversationId))];
    let watermarks = await this.repository.watermarks(ids);
    const newer = ids.find((id) => {
      const counted = watermarks.get(id)?.epoch;
      return counted != null && epochIsBefore(epoch, counted);
    });
    if (newer !== undefined) {
      // Either this instance has not noticed the log recreated (another already persists the new
      // one), or the log is older than what Postgres counts in (a stream restored from a backup
      // keeps its creation time). Only the stream can tell.
      if (!(await this.stream.confirms(epoch))) {
        // The flush drops this batch: its events are the old log's.
        throw new Error(`conversation ${newer} already counts in a newer log epoch (${watermarks.get(newer)!.epoch}) than this batch's (${epoch})`);
      }
      this.logger.warn({ epoch, conversationId: newer, counted: watermarks.get(newer)!.epoch }, "Postgres counts conversations in a newer log epoch than the log's own (a stream restored from a backup?): rebuilding them from the log");
    }
    const stale = ids.filter((id) => {
      const watermark = watermarks.get(id);
      return watermark !== undefined && watermark.epoch !== null && watermark.epoch !== epoch;
    });
    const archived = stale.length > 0 ? await this.repository.archiveOtherEpochs(stale, epoch, { newer: newer !== undefined }) : [];
    if (archived.length > 0) {
      this.metrics.epochArchives.inc(archived.length);
      this.logger.warn({ epoch, conversations: archived.length, sample: archived.slice(0, 10) }, 'the log was recreated: rows of the old epoch moved to archived_messages; rebuilding from the new log');
    }
    // Read again even when this call archived none: another persister (a lease hand-over) may have
    // archived them and applied new events since the read above, whose old-epoch watermark would
    // count this batch's events as seen and acknowledge them unwritten.
    if (stale.length > 0) watermarks = await this.repository.watermarks(ids);
    const entries = items.filter((item): item is LogEntry => !('error' in item));
    // An event of a newer type changes no row: its message is not read.
    const keys = new Map(entries.filter((entry) => entry.unknownType === undefined).map((entry) => [messageKey(entry.conversationId, entry.event.messageId), { conversationId: entry.conversationId, id: entry.event.messageId }]));
    // A message whose value a batch sets whole (a data part, a tool's output): its row's blocks are
    // read and written back folded, or every flush would add the whole value again to the row.
    const settingWhole = new Set(entries.filter((entry) => entry.event.type === 'message.appended' && isSetWhole(entry.event.block)).map((entry) => messageKey(entry.conversationId, entry.event.messageId)));
    const withBlocks = new Set<string>();
    const rows = await this.repository.loadHeads([...keys.values()], epoch, settingWhole, withBlocks);
    const states = new Map<string, ConversationState>();
    const touched = new Map<string, MessageWrite>();
    const moves = new Map<string, { from: number; to: number }>();
    const holes: LogHole[] = [];
    const outcomes: Outcome[] = [];
    let firstSeq: number | undefined;
    const unknownTypes = new Set<string>();
    /**
     * Conversations whose long gap had a piece filled in this batch: their other waiting events
     * wait for a later delivery rather than read on, so a batch reads at most one piece each.
     */
    const pieced = new Set<string>();
    /**
     * Events read from the log in this batch. After a database restore many conversations wait at
     * once; a batch reads for them until it has read one read's worth, and the others wait for a
     * later delivery, so a batch's memory and transaction stay bounded.
     */
    let refilled = 0;
    /** Events read from the log and applied: counted once the batch is written (a retried batch reads them again). */
    let refilledApplied = 0;
    /** Applies one event right after the conversation's watermark (as moved so far in this batch). */
    const apply = (entry: LogEntry, from: number): void => {
      if (entry.unknownType !== undefined) unknownTypes.add(entry.unknownType);
      let state = states.get(entry.conversationId);
      if (!state) {
        state = { conversationId: entry.conversationId, seq: 0, messages: new Map<string, MessageState>() };
        states.set(entry.conversationId, state);
      }
      const key = messageKey(entry.conversationId, entry.event.messageId);
      const row = rows.get(key);
      if (row && !state.messages.has(row.id)) state.messages.set(row.id, { ...row });
      const changed = applyEntry(state, entry, epoch);
      if (changed) touched.set(key, { conversationId: entry.conversationId, state: changed, fromSeq: row ? row.appliedSeq : null, wholeBlocks: withBlocks.has(key) });
      moves.set(entry.conversationId, { from, to: entry.seq });
    };
    /**
     * Once an event has waited its deliveries, reads its conversation's events after `at` up to
     * `until` from the log and applies them; whether they reached `until` (false: the event waits
     * on, for a read that could not be made now or for the next piece of a longer gap).
     */
    const fill = async (index: number, conversationId: string, at: number, until: number, from: number, firstSeq: number): Promise<boolean> => {
      const due = batch[index]!.info.deliveryCount >= REFILL_AFTER_DELIVERIES && !pieced.has(conversationId) && refilled < REFILL_MAX_EVENTS;
      const refill = due ? await this.readMissing(conversationId, at, until, firstSeq, epoch, REFILL_MAX_EVENTS - refilled) : null;
      if (!refill) return false;
      refilled += refill.read;
      for (const hole of refill.holes) {
        this.logger.error({ conversationId, afterSeq: hole.afterSeq, untilSeq: hole.untilSeq, reason: hole.reason, firstSeq }, 'the events an event waits for, read from the log, hold one that cannot apply; recorded as a hole');
      }
      holes.push(...refill.holes);
      const unknownKeys = refill.apply.filter((entry) => entry.unknownType === undefined).map((entry) => ({ conversationId: entry.conversationId, id: entry.event.messageId })).filter((key) => !rows.has(messageKey(key.conversationId, key.id)));
      for (const [key, row] of await this.repository.loadHeads(unknownKeys, epoch)) rows.set(key, row);
      for (const entry of refill.apply) apply(entry, from);
      // Past the last event applied or stepped over.
      moves.set(conversationId, { from, to: refill.position });
      refilledApplied += refill.apply.length;
      this.logger.warn({ conversationId, afterSeq: at, untilSeq: refill.position, events: refill.apply.length }, 'log events the persister consumer did not deliver again were read from the log');
      // Only the first piece of a longer gap: applied now, the rest read on a later delivery.
      if (!refill.reached) pieced.add(conversationId);
      return refill.reached;
    };
    for (const [index, item] of items.entries()) {
      const watermark = watermarks.get(item.conversationId);
      if (watermark === undefined) {
        outcomes.push('done'); // the conversation was deleted (or never created): nothing to keep
        continue;
      }
      const from = watermark.seq;
      const at = moves.get(item.conversationId)?.to ?? from;
      if ('error' in item) {
        if (item.seq <= at) {
          outcomes.push('skipped'); // stepped over before: a redelivery
          continue;
        }
        // Its predecessor is unknown, but the log knows whether anything of the conversation lies between.
        const next = await this.log.nextSeq(item.conversationId, at + 1);
        if (next !== null && next < item.seq) {
          // Those events normally turn up within a delivery or two; past that they are read from
          // the log (a delivery a replicated consumer lost comes back no more), up to this event,
          // which the read steps over as a hole.
          firstSeq ??= (await this.stream.bounds()).first;
          outcomes.push((await fill(index, item.conversationId, at, item.seq, from, firstSeq)) ? 'skipped' : 'deferred');
          continue;
        }
        this.logger.error({ conversationId: item.conversationId, seq: item.seq, err: item.error }, 'skipped a log event that cannot be decoded; recorded as a hole');
        holes.push({ conversationId: item.conversationId, epoch, afterSeq: at, untilSeq: item.seq, reason: 'undecodable' });
        moves.set(item.conversationId, { from, to: item.seq });
        outcomes.push('skipped');
        continue;
      }
      const step = chainStep(at, item);
      switch (step) {
        case 'seen':
          outcomes.push('done'); // applied before: a redelivery
          continue;
        case 'fork':
          // It can never apply, and waiting for it would hold its conversation's later events,
          // and in the end every conversation's, behind it. Later events chain on from it, so the
          // watermark moves past it, as past an undecodable one.
          this.logger.error({ conversationId: item.conversationId, seq: item.seq, prev: item.prev, at }, 'skipped a log event that forks the conversation; recorded as a hole');
          holes.push({ conversationId: item.conversationId, epoch, afterSeq: at, untilSeq: item.seq, reason: 'fork' });
          moves.set(item.conversationId, { from, to: item.seq });
          outcomes.push('skipped');
          continue;
        case 'ahead': {
          firstSeq ??= (await this.stream.bounds()).first;
          if (item.prev < firstSeq) {
            // Its predecessor expired from the log before Postgres got it: those events are gone for good.
            this.logger.error({ conversationId: item.conversationId, afterSeq: at, untilSeq: item.prev, firstSeq }, 'events expired from the log before they were persisted; recorded as a hole');
            holes.push({ conversationId: item.conversationId, epoch, afterSeq: at, untilSeq: item.prev, reason: 'retention' });
            break;
          }
          // Its predecessor is still in the log and has not been applied yet: it normally turns up
          // within a delivery or two; after that it is read from the log.
          if (!(await fill(index, item.conversationId, at, item.prev, from, firstSeq))) {
            outcomes.push('deferred');
            continue;
          }
          break;
        }
        case 'next':
          break;
        default: {
          const unreachable: never = step;
          throw new Error(`unknown chain step ${String(unreachable)}`);
        }
      }
      apply(item, from);
      outcomes.push('done');
    }
    if (unknownTypes.size > 0) {
      this.logger.warn({ types: [...unknownTypes] }, 'log events of a type this version does not know (written by a newer version) kept their place and changed no row');
    }
    if (moves.size > 0) {
      const timer = this.metrics.persistFlushSeconds.startTimer();
      await this.repository.write([...touched.values()], moves, epoch, holes);
      timer();
      this.metrics.unknownEvents.inc(unknownTypes.size);
      this.metrics.persistRefilledEvents.inc(refilledApplied);
      this.metrics.persistFlushes.inc();
      this.metrics.persistRowWrites.inc(touched.size);
      this.metrics.persistEvents.inc(outcomes.filter((outcome) => outcome === 'done').length);
      for (const hole of holes) {
        this.metrics.holes.inc({ reason: hole.reason });
        if (hole.reason === 'undecodable') this.metrics.poisonEvents.inc();
      }
      const now = Date.now();
      for (const conversationId of moves.keys()) {
        // Moved to the end: the map stays in order of the last event applied.
        this.applied.delete(conversationId);
        this.applied.set(conversationId, now);
      }
    }
    return outcomes;
  }

  /**
   * Looks up, in the log, the last event of each conversation that has been quiet for `QUIET_MS`,
   * and has Postgres take any it lacks. A missing event is normally noticed when its successor
   * arrives (see `write`), but a conversation's last event has none: were the consumer to lose it
   * (a replicated consumer can count an event as acknowledged across a leader change), the answer
   * would stay `streaming` in Postgres for good. The event read goes through the batch path as if
   * delivered a few times already, so what it waits for is read from the log at once.
   */
  /**
   * Has the next quiet check look in the log for events of `conversationId` that Postgres lacks,
   * however long ago this instance applied one (or if it never did): for a row that something
   * else found behind the log, such as an answer the log says ended and Postgres shows streaming.
   */
  recheck(conversationId: string): void {
    if (this.rechecks.size < MAX_RECHECKS) this.rechecks.add(conversationId);
  }

  private async checkQuiet(): Promise<void> {
    if (!this.leadership.held || this.stopped) {
      this.applied.clear();
      this.rechecks.clear();
      return;
    }
    const quietSince = Date.now() - QUIET_MS;
    const due = new Set(this.rechecks);
    this.rechecks.clear();
    for (const [conversationId, at] of this.applied) {
      if (at > quietSince) break;
      due.add(conversationId);
    }
    if (due.size === 0) return;
    for (const conversationId of due) this.applied.delete(conversationId);
    try {
      await this.findMissing([...due]);
    } catch (error) {
      // Looked at again next time, rather than never: a row behind the log could stay so for good.
      for (const conversationId of due) this.recheck(conversationId);
      throw error;
    }
  }

  /** Reads the last log event of each of `due` and has the batch path apply any Postgres lacks. */
  private async findMissing(due: string[]): Promise<void> {
    const epoch = this.stream.epoch;
    const watermarks = await this.repository.watermarks(due);
    const current = due.filter((conversationId) => {
      const watermark = watermarks.get(conversationId);
      return watermark !== undefined && (watermark.epoch === null || watermark.epoch === epoch);
    });
    const missing: PersistItem[] = [];
    for (let i = 0; i < current.length; i += QUIET_LOOKUPS_AT_ONCE) {
      const ids = current.slice(i, i + QUIET_LOOKUPS_AT_ONCE);
      const lasts = await Promise.all(ids.map((conversationId) => this.log.lastStored(conversationId)));
      for (const [j, last] of lasts.entries()) {
        const conversationId = ids[j]!;
        const watermark = watermarks.get(conversationId)!;
        if (!last || last.seq <= watermark.seq) continue;
        this.logger.warn({ conversationId, watermark: watermark.seq, last: last.seq }, 'a quiet conversation has events in the log that Postgres lacks and no delivery brought; reading them from the log');
        missing.push({
          subject: last.subject,
          seq: last.seq,
          data: last.data,
          info: { deliveryCount: REFILL_AFTER_DELIVERIES },
          ack: () => undefined,
          term: () => undefined,
          // Still not applicable (a gap the log cannot fill now): looked at again after the next quiet time.
          nak: () => void this.applied.set(conversationId, Date.now()),
        });
      }
    }
    if (missing.length === 0 || this.stream.epoch !== epoch) return;
    if (this.buffer.length > 0 && this.bufferEpoch !== epoch) return;
    this.bufferEpoch = epoch;
    this.buffer.push(...missing);
    await this.flush();
  }

  /**
   * A conversation's events after `after` up to and including `until`, read from the log, when
   * they chain from `after` to `until` (see `walkChain`: forks and undecodable events stepped over
   * as holes); null otherwise (then the event waits as before), and without a read for
   * `REFILL_RETRY_MS` after one that could not fill the gap. Reads at most `limit` events (what is
   * left of the batch's reading).
   */
  private async readMissing(conversationId: string, after: number, until: number, firstSeq: number, epoch: string, limit: number): Promise<Refill | null> {
    const failedAt = this.refillFailedAt.get(conversationId);
    if (failedAt !== undefined && Date.now() - failedAt < REFILL_RETRY_MS) return null;
    const refill = await this.readChain(conversationId, after, until, firstSeq, epoch, limit);
    if (refill) this.refillFailedAt.delete(conversationId);
    else {
      // Past their wait, entries say nothing: drop them, so conversations that never refill again are not kept for good.
      const now = Date.now();
      for (const [id, at] of this.refillFailedAt) if (now - at >= REFILL_RETRY_MS) this.refillFailedAt.delete(id);
      this.refillFailedAt.set(conversationId, now);
    }
    return refill;
  }

  /**
   * Reads at most `limit` events after `after` and walks their chain strictly: its first event may
   * name one that expired from the log (a `retention` hole). A gap longer than one read gives the
   * piece it read, with `reached` false.
   */
  private async readChain(conversationId: string, after: number, until: number, firstSeq: number, epoch: string, limit: number): Promise<Refill | null> {
    const entries: LogEntry[] = [];
    const undecodable: number[] = [];
    try {
      // Decoded in full, as the consumer's events are: what is applied goes to Postgres.
      for await (const batch of this.log.readBatches(conversationId, after, limit, 500, (seq) => undecodable.push(seq), decodeEntry)) {
        entries.push(...batch);
        if (Math.max(entries.at(-1)?.seq ?? 0, undecodable.at(-1) ?? 0) >= until) break;
      }
    } catch (error) {
      this.logger.warn({ err: error, conversationId, after, until }, 'could not read the events an event waits for from the log');
      return null;
    }
    const read = entries.length + undecodable.length;
    const walk = walkChain(
      conversationId,
      epoch,
      after,
      entries.filter((entry) => entry.seq <= until),
      undecodable.filter((seq) => seq <= until),
      { strict: true, firstSeq },
    );
    if (walk.broken) return null;
    if (walk.position === until) return { ...walk, reached: true, read };
    // The read stopped at its limit short of `until`: the first piece of a longer gap.
    if (read >= limit && walk.position > after) return { ...walk, reached: false, read };
    return null;
  }

  private decode(msg: PersistItem): LogEntry | { conversationId: string; seq: number; error: Error } {
    const conversationId = this.stream.subjects.conversationOf(msg.subject);
    try {
      return decodeEntry(conversationId, msg.seq, msg.data, new Date());
    } catch (error) {
      if (!(error instanceof UndecodableEventError)) throw error;
      return { conversationId, seq: msg.seq, error };
    }
  }
}

type Outcome = 'done' | 'deferred' | 'skipped';

/** Events read from the log to fill a gap, walked along their chain. */
interface Refill extends ChainWalk {
  /** Whether they reach the event that waits for them, or are only the first piece of a longer gap. */
  reached: boolean;
  /** Events the read brought, those stepped over included: they count against the batch's reading. */
  read: number;
}
