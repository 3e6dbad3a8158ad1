import { toPublicMessage } from '@seqline/persistence';
import { blockChars, type Message } from '@seqline/protocol';
import { applyEntry, type ConversationState } from '@seqline/persistence';
import type { ConversationFeed, FeedSubscription } from './conversation-feed.js';
import type { FeedEvent } from './feed-event.js';

/** How long snapshots wait for a state build under way rather than start one of their own. */
const SHARED_BUILD_MS = 30_000;

/**
 * The characters kept in snapshot states across an instance's conversations: each conversation's
 * cap alone leaves their sum unbounded (a thousand large conversations opened at once).
 */
export class KeptChars {
  private used = 0;

  constructor(readonly max: number) {}

  /** Counts `chars` in if they fit; false (nothing counted) otherwise. */
  take(chars: number): boolean {
    if (this.used + chars > this.max) return false;
    this.used += chars;
    return true;
  }

  give(chars: number): void {
    this.used = Math.max(0, this.used - chars);
  }

  get total(): number {
    return this.used;
  }
}

export interface Snapshot {
  /** Every event up to this sequence is reflected in `messages`. */
  seq: number;
  messages: Message[];
  /** The log held nothing after `seq` when the state was read (only for a state just built). */
  atHead: boolean;
}

/**
 * A conversation's current messages, kept in memory while devices keep asking for snapshots of
 * it: a thousand devices opening one conversation cost one Postgres read, not a thousand. The
 * state follows the feed like any subscriber, so it is exact at its position at every moment.
 * Conversations too large to keep are read from Postgres for each snapshot instead.
 */
export class SnapshotKeeper {
  private state?: ConversationState;
  private subscription?: FeedSubscription;
  private building?: { promise: Promise<ConversationState>; startedAt: number };
  private cached?: Snapshot;
  private chars = 0;
  lastUsed = Date.now();

  constructor(
    private readonly feed: ConversationFeed,
    private readonly build: () => Promise<ConversationState>,
    private readonly epoch: string,
    private readonly maxChars: number,
    private readonly budget: KeptChars = new KeptChars(Infinity),
  ) {}

  async snapshot(): Promise<Snapshot> {
    this.lastUsed = Date.now();
    if (this.state) return this.current(this.state);
    // Past a while, a build on a connection the network cut off (which can hang for many minutes)
    // is left to itself: a new one, on a connection made since, lands once the network is back.
    if (!this.building || Date.now() - this.building.startedAt >= SHARED_BUILD_MS) {
      const building = { promise: this.build(), startedAt: Date.now() };
      this.building = building;
      const forget = (): void => {
        if (this.building === building) this.building = undefined;
      };
      building.promise.then(forget, forget);
    }
    const state = await this.building.promise;
    if (this.state) return this.current(this.state);
    if (this.keep(state)) return this.current(state);
    return { seq: state.seq, messages: list(state), atHead: true };
  }

  /** Stops following the feed and frees the state. */
  drop(): void {
    this.subscription?.close();
    this.subscription = undefined;
    this.release();
  }

  private release(): void {
    this.budget.give(this.chars);
    this.chars = 0;
    this.state = undefined;
    this.cached = undefined;
  }

  private keep(state: ConversationState): boolean {
    let chars = 0;
    // Every block counts, as against LIMIT_MESSAGE_CHARS: an answer may be mostly tool output or reasoning.
    for (const message of state.messages.values()) chars += message.text.length + blockChars(message.blocks);
    if (chars > this.maxChars || !this.budget.take(chars)) return false;
    this.chars = chars;
    this.state = state;
    // The state was built from a read that ran to the log's head after the feed was held.
    this.subscription = this.feed.subscribe({ send: (event) => this.apply(state, event), fail: () => this.drop() }, state.seq, { atHead: true });
    return this.state === state;
  }

  private apply(state: ConversationState, event: FeedEvent): boolean {
    if (this.state !== state) return false;
    applyEntry(state, event.entry, this.epoch);
    const grown = event.entry.event.type === 'message.appended' ? event.entry.event.delta.length : event.entry.event.type === 'message.created' ? event.entry.event.text.length : 0;
    if (this.chars + grown > this.maxChars || !this.budget.take(grown)) {
      this.release();
      return false;
    }
    this.chars += grown;
    return true;
  }

  private current(state: ConversationState): Snapshot {
    if (this.cached?.seq !== state.seq) this.cached = { seq: state.seq, messages: list(state), atHead: false };
    return this.cached;
  }
}

function list(state: ConversationState): Message[] {
  return [...state.messages.values()].sort((a, b) => a.createdSeq - b.createdSeq).map(toPublicMessage);
}
