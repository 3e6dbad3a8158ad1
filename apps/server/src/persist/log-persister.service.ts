import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { AckPolicy, DeliverPolicy, jetstream, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import type { Settings } from '@seqline/config';
import { messageKey, MessageRepository, type MessageState, type MessageWrite } from '@seqline/persistence';
import { decodeEntry, Lease, LogStream, type LogEntry } from '@seqline/streams';
import type { Logger } from 'pino';
import { LOGGER, SETTINGS } from '../core/tokens.js';
import { applyEntry, type ConversationState } from '../state/conversation-state.js';
import { MetricsService } from '../metrics/metrics.service.js';

const CONSUMER = 'postgres';

export interface PersisterLag {
  events: number;
  seconds: number;
}
/** How long an event waits before another try when its predecessor in the conversation is not applied yet. */
const DEFER_MS = 500;
const STALL_WARN_EVERY = 60;

/**
 * Materialises the log into Postgres: one row per message, updated in batches (every flush
 * interval or batch size), never one write per token. A shared durable consumer remembers what
 * is done, so after any restart or failover the work resumes from the log.
 *
 * Events are applied strictly along each conversation's `prev` chain: an event applies only if
 * its predecessor is the conversation's watermark. One already applied (a redelivery) is
 * acknowledged and skipped; one whose predecessor is missing (still pending on an instance that
 * died) is handed back for later, so nothing is applied out of order or skipped. Only the
 * instance holding the leadership lease consumes.
 */
@Injectable()
export class LogPersister implements OnApplicationBootstrap, OnApplicationShutdown {
  private messages?: ConsumerMessages;
  private buffer: JsMsg[] = [];
  private flushing: Promise<void> = Promise.resolve();
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private running?: Promise<void>;

  constructor(
    private readonly stream: LogStream,
    private readonly repository: MessageRepository,
    private readonly metrics: MetricsService,
    private readonly leadership: Lease,
    @Inject(SETTINGS) private readonly settings: Settings,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.stream.jsm.consumers
      .add(this.stream.name, {
        durable_name: CONSUMER,
        filter_subject: this.stream.subjects.allLogs,
        deliver_policy: DeliverPolicy.All,
        ack_policy: AckPolicy.Explicit,
        // Events a dead instance had taken come back this soon.
        ack_wait: 10_000_000_000,
        max_ack_pending: 20_000,
      })
      .catch(async (error: unknown) => {
        if (!(await this.stream.jsm.consumers.info(this.stream.name, CONSUMER).catch(() => null))) throw error;
      });
    this.leadership.onChange((held) => (held ? this.startConsuming() : void this.messages?.close()));
    if (this.leadership.held) this.startConsuming();
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
    await this.messages?.close();
    await this.running;
    await this.flush();
  }

  /**
   * How far Postgres is behind the log: events not yet written (pending or in flight), and the
   * age of the oldest of them. Read from the shared consumer, so any instance can tell.
   */
  async lag(): Promise<PersisterLag> {
    const info = await this.stream.jsm.consumers.info(this.stream.name, CONSUMER);
    const events = info.num_pending + info.num_ack_pending;
    let seconds = 0;
    if (events > 0) {
      const oldest = await this.stream.jsm.streams
        .getMessage(this.stream.name, { seq: info.ack_floor.stream_seq + 1, next_by_subj: this.stream.subjects.allLogs } as unknown as { seq: number })
        .catch(() => null);
      if (oldest) seconds = Math.max(0, (Date.now() - oldest.time.getTime()) / 1000);
    }
    this.metrics.persisterLagEvents.set(events);
    this.metrics.persisterLagSeconds.set(seconds);
    return { events, seconds };
  }

  /** Consumes until shutdown, setting the consume loop up again after any failure. */
  private async run(): Promise<void> {
    const js = jetstream(this.stream.nc);
    while (!this.stopped && this.leadership.held) {
      try {
        const consumer = await js.consumers.get(this.stream.name, CONSUMER);
        this.messages = await consumer.consume({ max_messages: this.settings.persist.batchEvents * 2 });
        for await (const msg of this.messages) {
          this.buffer.push(msg);
          if (this.buffer.length >= this.settings.persist.batchEvents) await this.flush();
          else this.timer ??= setTimeout(() => void this.flush(), this.settings.persist.flushIntervalMs);
        }
      } catch (error) {
        if (!this.stopped) this.logger.warn({ err: error }, 'persister consume failed; restarting');
      }
      if (!this.stopped && this.leadership.held) await new Promise((resolve) => setTimeout(resolve, 500));
    }
    await this.flush();
  }

  /** Writes what is buffered; flushes never overlap, and events are acknowledged only once written. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      clearTimeout(this.timer);
      this.timer = undefined;
      const batch = this.buffer;
      this.buffer = [];
      if (batch.length === 0) return;
      for (let attempt = 1; ; attempt++) {
        try {
          const entries = batch.map((msg) => decodeEntry(this.stream.subjects.conversationOf(msg.subject), msg.seq, msg.data, new Date()));
          const deferred = await this.write(entries);
          for (const [i, msg] of batch.entries()) {
            if (!deferred.has(i)) {
              msg.ack();
              continue;
            }
            msg.nak(DEFER_MS);
            // Normally a predecessor turns up within seconds; one that never does means the database
            // does not match the log (for instance a fresh database on an old stream).
            if (msg.info.deliveryCount % STALL_WARN_EVERY === 0) {
              const entry = entries[i]!;
              this.logger.warn({ conversationId: entry.conversationId, seq: entry.seq, prev: entry.prev, deliveries: msg.info.deliveryCount }, 'log event still waits for its predecessor in Postgres');
            }
          }
          return;
        } catch (error) {
          this.logger.warn({ err: error, attempt, events: batch.length }, 'persisting a batch failed; retrying');
          await new Promise((resolve) => setTimeout(resolve, Math.min(200 * attempt, 2_000)));
          if (this.stopped && attempt > 3) return;
        }
      }
    });
    return this.flushing;
  }

  /** Applies what follows each conversation's watermark; returns the indexes of events that must wait. */
  private async write(entries: LogEntry[]): Promise<Set<number>> {
    const epoch = this.stream.epoch;
    const watermarks = await this.repository.watermarks([...new Set(entries.map((entry) => entry.conversationId))]);
    const keys = new Map(entries.map((entry) => [messageKey(entry.conversationId, entry.event.messageId), { conversationId: entry.conversationId, id: entry.event.messageId }]));
    const rows = await this.repository.loadHeads([...keys.values()], epoch);
    const states = new Map<string, ConversationState>();
    const touched = new Map<string, MessageWrite>();
    const moves = new Map<string, { from: number; to: number }>();
    const deferred = new Set<number>();
    for (const [i, entry] of entries.entries()) {
      const from = watermarks.get(entry.conversationId);
      if (from === undefined) continue; // the conversation was deleted: nothing to keep
      const at = moves.get(entry.conversationId)?.to ?? from;
      if (entry.seq <= at) continue; // applied before: a redelivery
      if (entry.prev !== at) {
        deferred.add(i); // its predecessor has not been applied yet
        continue;
      }
      let state = states.get(entry.conversationId);
      if (!state) {
        state = { conversationId: entry.conversationId, seq: 0, messages: new Map<string, MessageState>() };
        states.set(entry.conversationId, state);
      }
      const key = messageKey(entry.conversationId, entry.event.messageId);
      const row = rows.get(key);
      if (row && !state.messages.has(row.id)) state.messages.set(row.id, { ...row });
      const changed = applyEntry(state, entry, epoch);
      if (changed) touched.set(key, { conversationId: entry.conversationId, state: changed, fromSeq: row ? row.appliedSeq : null });
      moves.set(entry.conversationId, { from, to: entry.seq });
    }
    if (moves.size > 0) {
      const timer = this.metrics.persistFlushSeconds.startTimer();
      await this.repository.write([...touched.values()], moves);
      timer();
      this.metrics.persistFlushes.inc();
      this.metrics.persistRowWrites.inc(touched.size);
      this.metrics.persistEvents.inc(entries.length - deferred.size);
    }
    return deferred;
  }
}
