import { parseCursor } from '../../protocol/src/cursor.js';
import type { ConversationEvent } from '../../protocol/src/events.js';
import type { Message } from '../../protocol/src/message.js';
import { ConversationView } from './conversation-view.js';

/** What a subscription reports to the app. */
export type SubscriptionChange =
  | { type: 'event'; event: ConversationEvent }
  /** The view was replaced by a snapshot (first load, or a cursor the server could no longer resume). */
  | { type: 'reset' }
  /** The server answered a subscribe with a head the view has reached already: it is current (`live`) with no event to show it. */
  | { type: 'live' }
  | { type: 'error'; code: string; message: string }
  /** The subscription ended: closed by every caller of `subscribe()`, or the client closed. Nothing follows. */
  | { type: 'ended' };

/**
 * One conversation followed by a device: an always-current `messages` view, change callbacks
 * and an async iterator of applied events.
 */
export class Subscription {
  readonly view: ConversationView;
  /** Whether the device has applied everything the server had when it (re)subscribed. */
  live = false;
  /** Set while a gap is being repaired: events are ignored until the server answers the new subscribe. */
  repairing = false;
  head: string | undefined;
  /** Set once the stored state is loaded; only then may the subscription be sent. */
  loaded = false;
  /** @internal Subscribe attempts refused with a retryable error since the last success. */
  retries = 0;
  /** @internal */
  retryTimer: ReturnType<typeof setTimeout> | undefined;
  /** @internal Snapshots asked for because an event did not fit the view, since the view last got past such an event. */
  repairs = 0;
  /** @internal The cursor of the last event that did not fit the view, until the view gets past it. */
  misfit: string | undefined;
  /**
   * Why the server refused this subscription for good (`FORBIDDEN`, `UNKNOWN_CONVERSATION`,
   * `TOO_MANY_SUBSCRIPTIONS`, …); undefined unless refused. It is tried again after the next
   * reconnect. A refused subscription is never `live`.
   */
  refusal: { code: string; message: string } | undefined;
  /** @internal Callers of `subscribe()` that have not closed it yet. */
  holders = 1;
  private ended = false;
  private readonly listeners = new Set<(change: SubscriptionChange) => void>();
  private readonly iterators = new Set<(event: ConversationEvent | undefined) => void>();

  constructor(
    readonly conversationId: string,
    private readonly detach: (subscription: Subscription) => void,
  ) {
    this.view = new ConversationView(conversationId);
  }

  /** The conversation's messages in order, as of `cursor`. */
  get messages(): Message[] {
    return this.view.list();
  }

  get cursor(): string | undefined {
    return this.view.cursor;
  }

  /** Calls `listener` on every change; returns a function that stops it. */
  on(listener: (change: SubscriptionChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Applied events, in order, from the moment `events()` is called until the subscription ends.
   * They are kept for the iterator until it is read or ended (`break` in a `for await` ends it).
   * @example for await (const event of subscription.events()) render(subscription.messages);
   */
  events(): AsyncIterableIterator<ConversationEvent> {
    const queue: (ConversationEvent | undefined)[] = [];
    let wake: (() => void) | undefined;
    let finished = this.ended;
    const push = (event: ConversationEvent | undefined): void => {
      queue.push(event);
      wake?.();
    };
    const finish = (): IteratorReturnResult<undefined> => {
      finished = true;
      this.iterators.delete(push);
      wake?.();
      return { done: true, value: undefined };
    };
    // Registered now, not at the first `next()`: events applied before the loop starts are kept.
    if (!finished) this.iterators.add(push);
    const iterator: AsyncIterableIterator<ConversationEvent> = {
      next: async () => {
        for (;;) {
          if (queue.length > 0) {
            const event = queue.shift();
            return event === undefined ? finish() : { done: false, value: event };
          }
          if (finished) return { done: true, value: undefined };
          // A `next()` made while another waits (a race against a timeout, say) is woken too.
          let mine: (() => void) | undefined;
          await new Promise<void>((resolve) => {
            const before = wake;
            mine = () => {
              before?.();
              resolve();
            };
            wake = mine;
          });
          // Only its own: a waiter woken with it may have waited again since.
          if (wake === mine) wake = undefined;
        }
      },
      return: async () => finish(),
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  /**
   * Stops following the conversation. `subscribe()` of a conversation already followed returns
   * the same subscription, so it ends only when each of those callers has closed it; then its
   * `events()` loops finish.
   */
  close(): void {
    if (this.ended) return;
    if (--this.holders > 0) return;
    this.end();
  }

  /** @internal Ends it whoever holds it (the client is closing). */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.retryTimer);
    for (const push of this.iterators) push(undefined);
    // Let go by the client first: a listener that subscribes again on `ended` gets a new subscription, not this one.
    this.detach(this);
    // Listeners too: a view waiting for an answer (a chat's stream) would otherwise wait for ever.
    this.emit({ type: 'ended' });
  }

  /** @internal */
  emit(change: SubscriptionChange): void {
    if (change.type === 'event') for (const push of this.iterators) push(change.event);
    for (const listener of this.listeners) {
      try {
        listener(change);
      } catch (error) {
        // One app listener that throws must not stop the others, nor the client's own bookkeeping.
        console.error('seqline: a subscription listener threw', error);
      }
    }
  }

  /** @internal Marks the subscription live once the view reaches the head seen at subscribe time. */
  updateLive(): boolean {
    const head = this.head === undefined ? undefined : parseCursor(this.head);
    const at = this.view.cursor === undefined ? undefined : parseCursor(this.view.cursor);
    this.live = this.refusal === undefined && head !== undefined && at !== undefined && (at.epoch !== head.epoch || at.seq >= head.seq);
    return this.live;
  }
}
