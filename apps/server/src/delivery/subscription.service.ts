import { Inject, Injectable } from '@nestjs/common';
import { isDatabaseUnavailable } from '@seqline/persistence';
import { ErrorCode, formatCursor, SeqlineError, type Message } from '@seqline/protocol';
import { ConversationLog, LogStream } from '@seqline/streams';
import type { Logger } from 'pino';
import { LogThrottle } from '../core/log-throttle.js';
import { LOGGER } from '../core/tokens.js';
import { within } from '../core/within.js';
import { CursorResolver } from './cursor-resolver.js';
import type { FeedSink, FeedSubscription } from './live/conversation-feed.js';
import { LiveFeed, type HeldFeed } from './live/live-feed.service.js';
import type { Snapshot } from './live/snapshot-keeper.js';

/** The longest a subscribe waits for its snapshot (Postgres, then the log) before it is refused `UNAVAILABLE`. */
const SNAPSHOT_WAIT_MS = 10_000;

/** How a subscription starts: from the device's cursor, or from a snapshot when there is none or it is too old. */
export type SubscriptionStart =
  | { mode: 'resume'; cursor: string; head: string }
  | { mode: 'snapshot'; cursor: string; messages: Message[] };

export interface OpenSubscription {
  start: SubscriptionStart;
  /**
   * Sends every event after `start.cursor` to `sink`, then live ones, in order. Call it right
   * after sending the start frame: events the instance holds in memory go out before it returns.
   */
  attach(sink: FeedSink): FeedSubscription;
  /** Gives the subscription up without attaching (the device left meanwhile). */
  cancel(): void;
}

/**
 * Shared by the WebSocket gateway and the SSE endpoint, so both give the same guarantee:
 * everything after the cursor, then live events, with no gap and no duplicate at the seam.
 */
@Injectable()
export class SubscriptionService {
  /** Snapshot failures logged at most once per 5 s for each cause, with a count of the rest. */
  private readonly snapshotFailures = { database: new LogThrottle(5_000), log: new LogThrottle(5_000) };
  /** Other failures to open (reading the log for a cursor), logged the same way. */
  private readonly openFailures = new LogThrottle(5_000);

  constructor(
    private readonly live: LiveFeed,
    private readonly cursors: CursorResolver,
    private readonly log: ConversationLog,
    private readonly stream: LogStream,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async open(conversationId: string, after: string | undefined): Promise<OpenSubscription> {
    // A cursor of a log recreated without this instance knowing yet: the epoch is read first, so
    // the feed held below is the new log's.
    await this.cursors.learnEpochOf(after).catch(() => undefined);
    // Held before anything is read, so every event written from now on reaches the feed.
    const held = this.live.hold(conversationId);
    const epoch = this.stream.epoch;
    try {
      const position = await this.cursors.resolve(conversationId, after, held);
      let seq: number;
      let atHead: boolean;
      let logHead: number | undefined;
      let start: SubscriptionStart;
      if (position.kind === 'resume') {
        seq = position.seq;
        atHead = position.atHead ?? false;
        // This instance's memory behind what the log just showed (its live feed restarting, or
        // reading a lagging replica): the head it knows would make the device live too early.
        const known = held.knownHead();
        const current = known !== undefined && (position.next === undefined || known >= position.next) ? known : undefined;
        const head = current ?? (atHead ? seq : (logHead = await this.log.lastSeq(conversationId)));
        start = { mode: 'resume', cursor: this.cursor(seq), head: this.cursor(Math.max(head, seq)) };
      } else {
        const snapshot = await this.snapshot(held);
        seq = snapshot.seq;
        atHead = snapshot.atHead;
        start = { mode: 'snapshot', cursor: this.cursor(seq), messages: snapshot.messages };
      }
      // Recreated meanwhile: the feed held was failed and dropped, and `seq` counts in the old log.
      if (this.stream.epoch !== epoch) throw new SeqlineError(ErrorCode.CursorExpired, `the log was recreated (epoch ${epoch} is now ${this.stream.epoch}); subscribe without a cursor for a snapshot`);
      return { start, attach: (sink) => held.feed.subscribe(sink, seq, { release: held.release, atHead, logHead }), cancel: held.release };
    } catch (error) {
      held.release();
      if (error instanceof SeqlineError) throw error;
      // Logged (throttled, as many devices meet one outage at once): a failure that is no passing
      // NATS one (a defect) would otherwise be retried by every client for ever, unseen.
      const suppressed = this.openFailures.pass();
      if (suppressed !== undefined) this.logger.warn({ err: error, conversationId, notLoggedSinceLast: suppressed }, 'opening a subscription failed');
      // NATS could not answer a log read: the same passing failure on every transport.
      throw new SeqlineError(ErrorCode.Unavailable, 'the log cannot be read right now; retry shortly');
    }
  }

  private async snapshot(held: HeldFeed): Promise<Snapshot> {
    try {
      // A database that stops answering without closing its connections would hold the subscribe until TCP gives up.
      return await within(held.snapshots.snapshot(), SNAPSHOT_WAIT_MS, () => new SeqlineError(ErrorCode.Unavailable, `history cannot be loaded right now (no answer within ${SNAPSHOT_WAIT_MS / 1000} s); retry shortly, or resume from a cursor`));
    } catch (error) {
      if (error instanceof SeqlineError) throw error;
      // A snapshot reads Postgres and the log after its rows: say which one failed.
      const cause = isDatabaseUnavailable(error) ? 'database' : 'log';
      const suppressed = this.snapshotFailures[cause].pass();
      if (suppressed !== undefined) this.logger.warn({ err: error, cause, notLoggedSinceLast: suppressed }, 'snapshot failed');
      if (cause === 'database') throw new SeqlineError(ErrorCode.Unavailable, 'history cannot be loaded right now (the database is unreachable); retry shortly, or resume from a cursor');
      throw new SeqlineError(ErrorCode.Unavailable, 'history cannot be loaded right now (the log did not answer); retry shortly');
    }
  }

  private cursor(seq: number): string {
    return formatCursor({ epoch: this.stream.epoch, seq });
  }
}
