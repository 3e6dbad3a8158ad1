import { indexAfterSeq } from './sequence-search.js';

/** One event as the log holds it, kept undecoded until someone reads it. */
export interface RecentEvent {
  readonly seq: number;
  readonly prev: number;
  readonly data: Uint8Array;
  readonly time: Date;
}

interface HeldEvent extends RecentEvent {
  readonly conversationId: string;
  /** No longer served (its conversation's chain broke after it); its memory goes when it is evicted. */
  dropped?: boolean;
}

interface ConversationEvents {
  events: HeldEvent[];
  /** Index of the oldest event still served: dropping from the front costs O(1). */
  head: number;
}

/** Memory an event is counted for beyond its bytes: the entry object and its place in two arrays. */
const OVERHEAD_BYTES = 96;

/**
 * The last events of the whole log, as this instance's live feed received them, by
 * conversation, bounded in bytes. A device resuming on any instance that saw the events go by
 * catches up from memory, with no JetStream read: reading one conversation back from a busy
 * stream costs NATS a scan of everything written in between. What is held for a conversation
 * is always an unbroken piece of its `prev` chain, so it is used only when it follows on from
 * the reader's position exactly; otherwise the reader goes to the log.
 */
export class RecentLog {
  private readonly conversations = new Map<string, ConversationEvents>();
  /** Every event still in memory, in stream order, oldest first from `oldest` on: evicted in that order. */
  private order: HeldEvent[] = [];
  private oldest = 0;
  /** Memory of every event in `order`, served or dropped. */
  private bytes = 0;

  constructor(
    private readonly maxBytes: number,
    /** The log's retention: what the log no longer holds is not served from memory either, so every instance judges a cursor alike. */
    private readonly maxAgeMs = Infinity,
    private readonly now: () => number = Date.now,
  ) {}

  get heldBytes(): number {
    return this.bytes;
  }

  /** Takes in an event the live feed received, in stream order. `data` is copied. */
  add(conversationId: string, seq: number, data: Uint8Array, time: Date): void {
    if (this.maxBytes <= 0) return;
    const prev = prevOf(data);
    let held = this.conversations.get(conversationId);
    const last = held?.events.at(-1);
    if (last && seq <= last.seq) return;
    if (held && last && prev !== last.seq) {
      // The chain broke here (or cannot be read): what came before cannot be joined to what follows.
      this.drop(held, held.events.length);
    }
    if (prev === undefined) {
      if (held) this.conversations.delete(conversationId);
      return;
    }
    if (!held) this.conversations.set(conversationId, (held = { events: [], head: 0 }));
    // A copy of its own: a Buffer's `slice` is a view, which would keep the whole socket read it came in (up to 64 KiB) alive.
    const event: HeldEvent = { conversationId, seq, prev, data: new Uint8Array(data), time };
    held.events.push(event);
    this.order.push(event);
    this.bytes += data.length + OVERHEAD_BYTES;
    while (this.bytes > this.maxBytes && this.evictOldest());
  }

  /**
   * Up to `limit` events right after `after`, when memory can tell what follows it: it holds the
   * event whose `prev` is `after` and all that come after, or `after` is the newest event it
   * holds (then nothing: what follows has not reached this instance, and comes through the live
   * feed). Undefined otherwise, and also for that nothing when `knownHead` (the newest event
   * the reader knows of, say from a JetStream read that ran ahead of the live feed) is later:
   * what lies between is in the log, not here.
   */
  after(conversationId: string, after: number, limit: number, knownHead?: number): RecentEvent[] | undefined {
    this.forgetExpired();
    const held = this.conversations.get(conversationId);
    if (!held) return undefined;
    const start = indexAfterSeq(held.events, after, held.head);
    const first = held.events[start];
    // (A conversation's array is emptied once every event in it is dropped, so its last one is served.)
    if (!first) return held.events.at(-1)?.seq === after && (knownHead === undefined || knownHead <= after) ? [] : undefined;
    if (first.prev !== after) return undefined;
    return held.events.slice(start, start + limit);
  }

  /** The newest event held for the conversation, if any. */
  last(conversationId: string): number | undefined {
    return this.conversations.get(conversationId)?.events.at(-1)?.seq;
  }

  /** Whether `after` can answer for a reader at `seq`: memory holds the event that follows it, or `seq` is the newest event held. */
  serves(conversationId: string, seq: number): boolean {
    return this.after(conversationId, seq, 1) !== undefined;
  }

  /** Gives back events older than the log's retention. */
  forgetExpired(): void {
    const cutoff = this.now() - this.maxAgeMs;
    while (this.oldest < this.order.length && this.order[this.oldest]!.time.getTime() < cutoff) this.evictOldest();
  }

  /** Forgets everything (the log was recreated: its sequences start again). */
  clear(): void {
    this.conversations.clear();
    this.order = [];
    this.oldest = 0;
    this.bytes = 0;
  }

  private evictOldest(): boolean {
    const event = this.order[this.oldest];
    if (!event) return false;
    this.order[this.oldest++] = undefined as never;
    if (this.oldest > 1024 && this.oldest * 2 > this.order.length) {
      this.order = this.order.slice(this.oldest);
      this.oldest = 0;
    }
    this.bytes -= event.data.length + OVERHEAD_BYTES;
    if (event.dropped) return true;
    const held = this.conversations.get(event.conversationId)!;
    // Stream order is each conversation's order too: its oldest served event is this one.
    this.drop(held, 1);
    if (held.events.length === 0) this.conversations.delete(event.conversationId);
    return true;
  }

  /**
   * Stops serving a conversation's `count` oldest events; their memory goes when they are evicted
   * (`order` holds them until then). Their places here are cleared at once: an evicted event left
   * here until the array is compacted would stay in memory uncounted.
   */
  private drop(held: ConversationEvents, count: number): void {
    const end = Math.min(held.events.length, held.head + count);
    for (let i = held.head; i < end; i++) {
      held.events[i]!.dropped = true;
      // Nothing reads before `head`.
      held.events[i] = undefined as never;
    }
    held.head = end;
    if (held.head === held.events.length) {
      held.events = [];
      held.head = 0;
    } else if (held.head > 64 && held.head * 2 > held.events.length) {
      held.events = held.events.slice(held.head);
      held.head = 0;
    }
  }
}

const OPEN = '{"prev":';

/**
 * The `prev` of a record written as `JSON.stringify({ prev, event })`, read off its first bytes
 * without parsing the rest; a record in any other form is parsed whole.
 */
export function prevOf(data: Uint8Array): number | undefined {
  let i = 0;
  for (; i < OPEN.length; i++) if (data[i] !== OPEN.charCodeAt(i)) return parsedPrev(data);
  let prev = 0;
  const start = i;
  for (; i < data.length && data[i]! >= 0x30 && data[i]! <= 0x39; i++) prev = prev * 10 + (data[i]! - 0x30);
  if (i === start || i - start > 15 || data[i] !== 0x2c) return parsedPrev(data);
  return prev;
}

const decoder = new TextDecoder();

function parsedPrev(data: Uint8Array): number | undefined {
  try {
    const prev = (JSON.parse(decoder.decode(data)) as { prev?: unknown } | null)?.prev;
    return typeof prev === 'number' && Number.isSafeInteger(prev) && prev >= 0 ? prev : undefined;
  } catch {
    return undefined;
  }
}
