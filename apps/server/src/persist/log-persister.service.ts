import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { AckPolicy, DeliverPolicy, jetstream, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import type { Settings } from '@seqline/config';
import { messageKey, MessageRepository, type MessageState, type MessageWrite } from '@seqline/persistence';
import { decodeEntry, Lease, LogStream, type LogEntry } from '@seqline/streams';
import type { Logger } from 'pino';
import { LOGGER, SETTINGS } from '../core/tokens.js';
import { applyEntry, type ConversationState } from '../state/conversation-state.js';
import { MetricsService } from '../metrics/metrics.service.js';

const CONSUMER = 'persister';

/**
 * Materialises the log into Postgres: one row per message, updated in batches (every flush
 * interval or batch size), never one write per token. A durable consumer remembers what is
 * done, so after any restart it resumes from the log; rows record the last sequence they
 * reflect, so a redelivered event changes nothing. Only the instance holding the leadership
 * lease consumes, so events are applied in log order; when it dies the lease lapses and
 * another instance takes over from the last acknowledged event.
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
        ack_policy: AckPolicy.All,
        ack_wait: 30_000_000_000,
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
          await this.write(batch.map((msg) => decodeEntry(this.stream.subjects.conversationOf(msg.subject), msg.seq, msg.data, new Date())));
          batch.at(-1)!.ack();
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

  private async write(entries: LogEntry[]): Promise<void> {
    const epoch = this.stream.epoch;
    const conversations = await this.repository.existingConversations([...new Set(entries.map((entry) => entry.conversationId))]);
    const known = entries.filter((entry) => conversations.has(entry.conversationId));
    const keys = new Map(known.map((entry) => [messageKey(entry.conversationId, entry.event.messageId), { conversationId: entry.conversationId, id: entry.event.messageId }]));
    const rows = await this.repository.loadHeads([...keys.values()], epoch);
    const states = new Map<string, ConversationState>();
    const touched = new Map<string, MessageWrite>();
    const watermarks = new Map<string, number>();
    for (const entry of known) {
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
      watermarks.set(entry.conversationId, entry.seq);
    }
    const timer = this.metrics.persistFlushSeconds.startTimer();
    await this.repository.write([...touched.values()], watermarks);
    timer();
    this.metrics.persistFlushes.inc();
    this.metrics.persistRowWrites.inc(touched.size);
    this.metrics.persistEvents.inc(entries.length);
  }
}
