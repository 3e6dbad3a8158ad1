import { ErrorCode, formatCursor, SeqlineError } from '@seqline/protocol';
import { indexAfterSeq, UndecodableEventError, type LogEntry } from '@seqline/streams';
import { FeedEvent } from './feed-event.js';

/** Where a subscriber receives its events: a WebSocket, an SSE response, or the feed's own snapshot state. */
export interface FeedSink {
  /** Sends one event; false when the sink is gone or was cut off, which ends the subscription. */
  send(event: FeedEvent): boolean;
  /** The subscription cannot go on; the sink tells its device (which subscribes again). */
  fail(error: unknown): void;
  /** Holds writes back while a batch of events is sent, so a catch-up costs a few socket writes, not one per event. */
  batch?(send: () => void): void;
  /** Back-pressure for catch-up (live events never wait). */
  flow?: SinkFlow;
}

export interface SinkFlow {
  /** Whether the sink holds enough unsent bytes that catch-up should wait for `drained`. */
  full(): boolean;
  /** Resolves once the sink has sent what it holds, or is gone. */
  drained(): Promise<void>;
}

/** Catch-up events sent in one batch before the sink is asked whether it has room for more. */
const CATCH_UP_BATCH = 256;

/** How a feed reads events it never saw live: the conversation's log on JetStream. */
export interface FeedLog {
  readonly epoch: string;
  /**
   * Up to `limit` events after `after`, in batches of up to `batchSize` as they arrive. `logHead`:
   * an event the log held once, after `after`; a read of the log that ends before it (the events
   * between expired or were discarded since) throws `CURSOR_EXPIRED`, not a short read.
   */
  readBatches(conversationId: string, after: number, limit: number, batchSize: number, logHead?: number): AsyncIterable<LogEntry[]>;
}

export interface FeedLimits {
  /** Recent events kept in memory, so most resumes need no read from the log. */
  windowEvents: number;
  windowBytes: number;
  /** Events per log read while a subscriber catches up. */
  readBatch: number;
}

export interface SubscribeOptions {
  /** Called once the subscription ends (see `hold`). */
  release?: () => void;
  /**
   * The caller saw the log hold nothing after `position`, in a read that began after this feed
   * was created (held). The feed then needs no read to know the conversation's head.
   */
  atHead?: boolean;
  /** The conversation's last event in the log when the subscriber's position was judged (`FeedLog.readBatches`' `logHead`). */
  logHead?: number;
}

/** One subscriber of a feed: where it is in the conversation's chain, and whether it is caught up. */
export class FeedSubscription {
  /** The sequence of the last event this subscriber has been sent. */
  position: number;
  live = false;
  closed = false;

  constructor(
    readonly sink: FeedSink,
    position: number,
    private readonly onClose: (subscription: FeedSubscription) => void,
    readonly logHead?: number,
  ) {
    this.position = position;
  }

  /** Ends the subscription; nothing of it stays behind in the feed. Safe to call more than once. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose(this);
  }
}

/**
 * One conversation's live events on this instance, shared by all its local subscribers.
 *
 * The feed keeps a window of recent events: a contiguous piece of the conversation's `prev`
 * chain, from `base` (exclusive) to `head`. A subscriber joins at its position: if the window
 * reaches back to it, the missed events come from memory and it is live in the same tick;
 * otherwise it reads the log in batches until the window reaches it. Live events go to a
 * subscriber only if their `prev` is its position, so the seam between catch-up and live can
 * have no gap and no duplicate, whatever the timing of reads and live events.
 */
export class ConversationFeed {
  private window: FeedEvent[] = [];
  private windowBytes = 0;
  private base?: number;
  private head?: number;
  private readonly subscriptions = new Set<FeedSubscription>();
  /** Devices subscribed or subscribing; the feed is dropped only after it has had none for a while. */
  private users = 0;
  /** Why every subscription ended (the log was recreated): a later one ends alike. */
  private failure?: unknown;
  idleSince = Date.now();

  constructor(
    readonly conversationId: string,
    private readonly log: FeedLog,
    private readonly limits: FeedLimits,
  ) {}

  /** The last event this feed knows of, if it knows the conversation's head yet. */
  get knownHead(): number | undefined {
    return this.head;
  }

  get subscriberCount(): number {
    return this.subscriptions.size;
  }

  get idle(): boolean {
    return this.users === 0;
  }

  /** Whether a subscriber at `seq` can resume from memory: `seq` is an event of this conversation the window still follows. */
  covers(seq: number): boolean {
    return this.base !== undefined && this.head !== undefined && seq >= this.base && seq <= this.head && (seq === this.base || this.indexOf(seq) >= 0);
  }

  /** Counts a device that is opening a subscription, so the feed is kept meanwhile. Returns the release. */
  hold(): () => void {
    this.users++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--this.users === 0) this.idleSince = Date.now();
    };
  }

  /**
   * Starts sending to `sink` every event after `position`, in chain order: first what it missed
   * (from the window, or the log), then live events. Events already in the window go out before
   * this returns, so a caller that sent its start frame just before keeps the frames in order.
   */
  subscribe(sink: FeedSink, position: number, options: SubscribeOptions = {}): FeedSubscription {
    const release = options.release ?? (() => undefined);
    const subscription = new FeedSubscription(
      sink,
      position,
      (closed) => {
        this.subscriptions.delete(closed);
        release();
      },
      options.logHead,
    );
    if (this.failure !== undefined) {
      // A feed of a log since recreated gets no event again: told as its other subscribers were,
      // once the caller has what this returns.
      const failure = this.failure;
      subscription.close();
      queueMicrotask(() => sink.fail(failure));
      return subscription;
    }
    this.subscriptions.add(subscription);
    if (options.atHead && this.base === undefined) {
      // Nothing reached the feed yet, and the log had nothing after this position since the feed began: it is the head.
      this.base = this.head = position;
    }
    let step: 'live' | 'more' | 'miss';
    try {
      step = this.sendFromWindow(subscription, CATCH_UP_BATCH);
    } catch (error) {
      // As in accept(): a sink that cannot take an event ends alone, and is not left among the
      // subscribers; it is told once the caller has what this returns.
      subscription.close();
      const failure = new SeqlineError(ErrorCode.Unavailable, `the events of ${this.conversationId} after ${position} could not be delivered (${error instanceof Error ? error.message : String(error)}); subscribe again from your cursor`);
      queueMicrotask(() => sink.fail(failure));
      return subscription;
    }
    if (step !== 'live') void this.catchUp(subscription);
    return subscription;
  }

  /** A committed event from the instance's live feed, in stream order. */
  accept(event: FeedEvent): void {
    if (this.head !== undefined && event.seq <= this.head) return;
    if (this.head === undefined || event.prev !== this.head) {
      // The first event seen, or one whose predecessor never reached this feed: the window restarts here.
      this.window = [];
      this.windowBytes = 0;
      this.base = event.prev;
    }
    this.window.push(event);
    this.windowBytes += event.size;
    this.head = event.seq;
    this.trim();
    for (const subscription of this.subscriptions) {
      if (!subscription.live || event.seq <= subscription.position) continue;
      if (event.prev !== subscription.position) {
        subscription.live = false;
        void this.catchUp(subscription);
        continue;
      }
      try {
        this.deliver(subscription, event);
      } catch (error) {
        // One sink that cannot take an event (a record of another version missing a field) must
        // not keep it from the subscribers after it, nor restart the instance's whole live feed.
        subscription.close();
        subscription.sink.fail(new SeqlineError(ErrorCode.Unavailable, `event ${event.seq} of ${this.conversationId} could not be delivered (${error instanceof Error ? error.message : String(error)}); subscribe again from your cursor`));
      }
    }
  }

  /** Drops window events older than `cutoff`, so idle conversations give their memory back. */
  forgetBefore(cutoff: number): void {
    let drop = 0;
    while (drop < this.window.length && this.window[drop]!.entry.time.getTime() < cutoff) drop++;
    this.dropOldest(drop);
  }

  /** Ends every subscription with an error its device acts on (the log was recreated). */
  failAll(error: unknown): void {
    // A subscriber that opened on this feed before the failure and attaches after it is told too.
    this.failure = error;
    for (const subscription of [...this.subscriptions]) {
      subscription.close();
      subscription.sink.fail(error);
    }
  }

  /** Ends every subscription (the instance is shutting down or the feed is dropped). */
  closeAll(): void {
    for (const subscription of this.subscriptions) subscription.close();
  }

  /**
   * Sends the window's events after the subscriber's position, one batch at most, and makes it
   * live once it reaches the head. `miss`: the window does not follow on from its position.
   */
  private sendFromWindow(subscription: FeedSubscription, limit: number): 'live' | 'more' | 'miss' {
    if (subscription.closed) return 'live';
    if (this.base === undefined || this.head === undefined) return 'miss';
    if (subscription.position >= this.head) {
      subscription.live = true;
      return 'live';
    }
    if (subscription.position < this.base) return 'miss';
    let step: 'live' | 'more' | 'miss' = 'live';
    this.inBatch(subscription, () => {
      let sent = 0;
      for (let i = indexAfterSeq(this.window, subscription.position); i < this.window.length; i++) {
        const event = this.window[i]!;
        if (event.prev !== subscription.position) {
          step = 'miss';
          return;
        }
        // At least one event a call: a sink that says it is full and then that it has drained must not stall the catch-up.
        if (sent === limit || (sent > 0 && subscription.sink.flow?.full())) {
          step = 'more';
          return;
        }
        if (!this.deliver(subscription, event)) return;
        sent++;
      }
      subscription.live = true;
    });
    return step;
  }

  private inBatch(subscription: FeedSubscription, send: () => void): void {
    if (subscription.sink.batch) subscription.sink.batch(send);
    else send();
  }

  /**
   * Brings a subscriber from its position to the head: from the window where it reaches back far
   * enough, otherwise from the log in batches. It waits whenever the sink is full, so a device on
   * a slow network catches up at its own pace instead of being cut off as a slow consumer.
   */
  private async catchUp(subscription: FeedSubscription): Promise<void> {
    const { sink } = subscription;
    try {
      for (;;) {
        if (sink.flow?.full()) await sink.flow.drained();
        const step = this.sendFromWindow(subscription, CATCH_UP_BATCH);
        if (step === 'live') return;
        if (step === 'more') continue;
        // Events after the window's base come from memory: the read stops where the window begins.
        const limit = this.base !== undefined && this.base > subscription.position ? Math.min(this.limits.readBatch, this.base - subscription.position) : this.limits.readBatch;
        let read = 0;
        // What this read sent, kept while the feed has no window: if the read reaches the head, it becomes the window.
        const caught: FeedEvent[] = [];
        let caughtBytes = 0;
        const logHead = subscription.logHead !== undefined && subscription.logHead > subscription.position ? subscription.logHead : undefined;
        for await (const entries of this.log.readBatches(this.conversationId, subscription.position, limit, CATCH_UP_BATCH, logHead)) {
          read += entries.length;
          let next = 0;
          while (next < entries.length) {
            if (subscription.closed) return;
            if (sink.flow?.full()) {
              await sink.flow.drained();
              if (subscription.closed) return;
            }
            let broken = false;
            this.inBatch(subscription, () => {
              for (; next < entries.length; next++) {
                const entry = entries[next]!;
                if (entry.seq <= subscription.position) continue;
                if (entry.prev !== subscription.position) {
                  broken = true;
                  return;
                }
                const event = new FeedEvent(entry, this.log.epoch, entry.eventJson?.length ?? 0);
                if (!this.deliver(subscription, event)) return;
                if (this.base === undefined) {
                  caught.push(event);
                  caughtBytes += event.size;
                  // Only the newest window's worth can become the window: what is older is let go as the read goes on.
                  if (caught.length > 2 * this.limits.windowEvents || caughtBytes > 2 * this.limits.windowBytes) caughtBytes = this.keepNewest(caught);
                }
                if (sink.flow?.full()) {
                  next++;
                  return;
                }
              }
            });
            if (subscription.closed) return;
            if (broken) {
              throw this.expired(subscription);
            }
          }
          if (this.covers(subscription.position)) break;
        }
        if (subscription.closed) return;
        if (read === 0 && this.base !== undefined && subscription.position < this.base) {
          // The log has nothing after this position, yet the window starts later: what lay between is gone.
          throw this.expired(subscription);
        }
        if (read < limit && this.base === undefined) {
          // The log has nothing after this position, and no event has reached the feed since it
          // was created (before this read began): this position is the conversation's head, and
          // what this read sent is the chain up to it. Kept as the window, it serves the next
          // subscribers from memory, decoded and framed once (a reconnect storm after a failover).
          this.base = this.head = subscription.position;
          if (caught.at(-1)?.seq === subscription.position) this.keepAsWindow(caught);
        }
      }
    } catch (error) {
      if (subscription.closed) return;
      subscription.close();
      // No read gets past an event that cannot be decoded: only a snapshot (which skips it) does.
      subscription.sink.fail(error instanceof UndecodableEventError ? this.expired(subscription) : error);
    }
  }

  private expired(subscription: FeedSubscription): SeqlineError {
    const cursor = formatCursor({ epoch: this.log.epoch, seq: subscription.position });
    return new SeqlineError(ErrorCode.CursorExpired, `events after ${cursor} are no longer in the log; subscribe without a cursor for a snapshot`);
  }

  private deliver(subscription: FeedSubscription, event: FeedEvent): boolean {
    if (!subscription.sink.send(event)) {
      subscription.close();
      return false;
    }
    subscription.position = event.seq;
    return true;
  }

  /** Makes the newest of `events` (a piece of the chain ending at the head) the window, within its bounds. */
  private keepAsWindow(events: FeedEvent[]): void {
    const bytes = this.keepNewest(events);
    if (events.length === 0) return;
    this.window = events;
    this.windowBytes = bytes;
    this.base = this.window[0]!.prev;
  }

  /** Drops from `events` (in place) all but the newest that fit in a window; returns the bytes of what is kept. */
  private keepNewest(events: FeedEvent[]): number {
    let first = events.length;
    let bytes = 0;
    while (first > 0 && events.length - first < this.limits.windowEvents && bytes + events[first - 1]!.size <= this.limits.windowBytes) bytes += events[--first]!.size;
    events.splice(0, first);
    return bytes;
  }

  private trim(): void {
    // Trimmed in steps of an eighth, so each event costs O(1) on average.
    if (this.window.length <= this.limits.windowEvents && this.windowBytes <= this.limits.windowBytes) return;
    let drop = Math.max(1, this.window.length >> 3);
    if (this.window.length - drop > this.limits.windowEvents) drop = this.window.length - this.limits.windowEvents;
    this.dropOldest(Math.min(drop, this.window.length - 1));
  }

  private dropOldest(count: number): void {
    if (count <= 0) return;
    const dropped = this.window.splice(0, count);
    for (const event of dropped) this.windowBytes -= event.size;
    this.base = dropped.at(-1)!.seq;
  }

  private indexOf(seq: number): number {
    const i = indexAfterSeq(this.window, seq) - 1;
    return i >= 0 && this.window[i]!.seq === seq ? i : -1;
  }
}
