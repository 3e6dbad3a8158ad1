import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { Settings } from '@seqline/config';
import { ConversationLog, decodeDeliveredEntry, LogStream, LogTail, RecentLog, type LogEntry, type TailMessage } from '@seqline/streams';
import type { Logger } from 'pino';
import { ErrorCode, SeqlineError } from '@seqline/protocol';
import { LOGGER, SETTINGS } from '../../core/tokens.js';
import { MetricsService } from '../../metrics/metrics.service.js';
import { SnapshotService } from '../../state/snapshot.service.js';
import { ConversationFeed, type FeedLog } from './conversation-feed.js';
import { FeedEvent } from './feed-event.js';
import { readLogAfter } from './log-read.js';
import { KeptChars, SnapshotKeeper } from './snapshot-keeper.js';

const SWEEP_MS = 5_000;
/** Window events older than this (or than the log's retention) are forgotten: resumes after longer absences read the log. */
const WINDOW_AGE_MS = 120_000;
/** A kept snapshot state nobody asked for in this long is dropped. */
const SNAPSHOT_IDLE_MS = 30_000;
const SNAPSHOT_MAX_CHARS = 1_000_000;
/** All kept states of an instance together (characters): about 64-128 MB at most, whatever the number of conversations. */
const SNAPSHOT_KEPT_CHARS = 32_000_000;
const READ_BATCH = 10_000;

export interface HeldFeed {
  feed: ConversationFeed;
  snapshots: SnapshotKeeper;
  /** Lets the feed go once the subscription that held it ends (or never starts). */
  release: () => void;
  /** Whether a reader at `seq` can catch up from this instance's memory (the feed's window, or the recent log). */
  covers(seq: number): boolean;
  /** The newest event of the conversation this instance knows of without asking the log. */
  knownHead(): number | undefined;
}

/**
 * The instance's live delivery: one consumer of the whole log (see `LogTail`), fanned out to a
 * feed per conversation that has local subscribers. An event is decoded once per instance and
 * its frames are serialised once, whatever the number of devices.
 */
@Injectable()
export class LiveFeed implements OnApplicationBootstrap, OnApplicationShutdown, FeedLog {
  private readonly feeds = new Map<string, { feed: ConversationFeed; snapshots: SnapshotKeeper }>();
  private readonly keptChars = new KeptChars(SNAPSHOT_KEPT_CHARS);
  private readonly tail: LogTail;
  private readonly recent: RecentLog;
  private sweeper?: NodeJS.Timeout;
  private stopFollowingEpoch?: () => void;

  constructor(
    private readonly stream: LogStream,
    private readonly log: ConversationLog,
    private readonly snapshotService: SnapshotService,
    private readonly metrics: MetricsService,
    @Inject(SETTINGS) private readonly settings: Settings,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    this.recent = new RecentLog(settings.feed.recentLogBytes, settings.log.retentionMs);
    this.tail = new LogTail(stream, {
      onMessage: (message) => this.receive(message),
      onRestart: (error, after) => {
        this.metrics.liveFeedRestarts.inc();
        this.logger.warn({ err: error, after }, 'live feed restarting after the last event it handed over');
      },
      onConsuming: (consumer, after) => this.logger.info({ consumer, after }, 'live feed consuming'),
      onStatus: (status) => this.logger.info({ status }, 'live feed consumer status'),
    });
  }

  /**
   * The log was recreated: every position a subscriber holds belongs to the old log. Each one is
   * ended with `CURSOR_EXPIRED`, so its device starts again from a snapshot of the new log. The
   * feeds leave the map before any subscriber hears of it: a sink that subscribes again at once
   * (an SSE stream does, in the same tick) must get a feed of the new log, not an old one, which no
   * live event reaches any more. (The stream sets its new epoch and calls this in one tick, so no
   * feed of the old log is handed out in between.)
   */
  private epochChanged(epoch: string, previous: string): void {
    this.metrics.epochChanges.inc();
    this.logger.warn({ epoch, previous, feeds: this.feeds.size }, 'the log was recreated; subscribers start again from a snapshot');
    const old = [...this.feeds.values()];
    this.feeds.clear();
    this.recent.clear();
    this.metrics.liveFeeds.set(0);
    const error = new SeqlineError(ErrorCode.CursorExpired, `the log was recreated (epoch ${previous} is now ${epoch}); subscribe without a cursor for a snapshot`);
    for (const { feed, snapshots } of old) {
      snapshots.drop();
      feed.failAll(error);
    }
  }

  get epoch(): string {
    return this.stream.epoch;
  }

  /**
   * From the recent log when it follows on from `after`, otherwise from JetStream. Memory may lag
   * the log (the live feed has not brought its newest events yet), so only a read of the log is
   * held to `logHead`.
   */
  async *readBatches(conversationId: string, after: number, limit: number, batchSize: number, logHead?: number): AsyncIterable<LogEntry[]> {
    const recent = this.recent.after(conversationId, after, limit, this.feeds.get(conversationId)?.feed.knownHead);
    if (!recent) {
      yield* readLogAfter(this.log, this.stream.epoch, conversationId, after, limit, batchSize, logHead);
      return;
    }
    this.metrics.recentLogReads.inc();
    for (let i = 0; i < recent.length; i += batchSize) {
      // An event that cannot be decoded fails the read, as it would from the log.
      yield recent.slice(i, i + batchSize).map((event) => decodeDeliveredEntry(conversationId, event.seq, event.data, event.time));
    }
  }

  async onApplicationBootstrap(): Promise<void> {
    this.stopFollowingEpoch = this.stream.onEpochChange((epoch, previous) => this.epochChanged(epoch, previous));
    await this.tail.start();
    const { lingerMs } = this.settings.feed;
    this.sweeper = setInterval(() => this.sweep(), Math.max(100, Math.min(SWEEP_MS, lingerMs / 2, this.settings.log.retentionMs / 2)));
    this.sweeper.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.sweeper);
    this.stopFollowingEpoch?.();
    for (const { feed, snapshots } of this.feeds.values()) {
      snapshots.drop();
      feed.closeAll();
    }
    this.feeds.clear();
    await this.tail.stop();
  }

  /** The conversation's feed, created if needed and kept until `release` is called. */
  hold(conversationId: string): HeldFeed {
    let held = this.feeds.get(conversationId);
    if (!held) {
      const feed = new ConversationFeed(conversationId, this, {
        windowEvents: this.settings.feed.windowEvents,
        windowBytes: this.settings.feed.windowBytes,
        readBatch: READ_BATCH,
      });
      const snapshots = new SnapshotKeeper(feed, () => this.snapshotService.build(conversationId), this.stream.epoch, SNAPSHOT_MAX_CHARS, this.keptChars);
      held = { feed, snapshots };
      this.feeds.set(conversationId, held);
      this.metrics.liveFeeds.set(this.feeds.size);
    }
    const { feed } = held;
    return {
      ...held,
      release: feed.hold(),
      covers: (seq) => feed.covers(seq) || this.recent.serves(conversationId, seq),
      knownHead: () => feed.knownHead ?? this.recent.last(conversationId),
    };
  }

  private receive(message: TailMessage): void {
    const conversationId = this.stream.subjects.conversationOf(message.subject);
    this.recent.add(conversationId, message.seq, message.data, message.time);
    const held = this.feeds.get(conversationId);
    if (!held) return;
    let entry: LogEntry;
    try {
      entry = decodeDeliveredEntry(conversationId, message.seq, message.data, message.time);
    } catch (error) {
      this.logger.error({ err: error, conversationId, seq: message.seq }, 'live feed skipped an event it cannot decode');
      return;
    }
    held.feed.accept(new FeedEvent(entry, this.stream.epoch, message.data.length));
  }

  /** Drops feeds nobody has used for the linger time, and memory that idle feeds no longer need. */
  private sweep(): void {
    const now = Date.now();
    for (const [conversationId, { feed, snapshots }] of this.feeds) {
      if (feed.idle && now - feed.idleSince > this.settings.feed.lingerMs) {
        snapshots.drop();
        feed.closeAll();
        this.feeds.delete(conversationId);
        continue;
      }
      if (now - snapshots.lastUsed > SNAPSHOT_IDLE_MS) snapshots.drop();
      feed.forgetBefore(now - Math.min(WINDOW_AGE_MS, this.settings.log.retentionMs));
    }
    this.recent.forgetExpired();
    this.metrics.liveFeeds.set(this.feeds.size);
    this.metrics.recentLogBytes.set(this.recent.heldBytes);
  }
}
