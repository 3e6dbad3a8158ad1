import { parseCursor } from '../../protocol/src/cursor.js';
import type { ConversationEvent, LogEventType } from '../../protocol/src/events.js';
import type { Message } from '../../protocol/src/message.js';
import { applyEvent } from '../../protocol/src/message-reducer.js';
import type { StoredConversation } from './cursor-store.js';

/**
 * What became of one event offered to a view: `gap` when it does not follow the cursor (replaying
 * after the cursor repairs that); `mismatch` when it follows the cursor but does not fit the
 * messages, so the state itself is wrong and only a snapshot repairs it.
 */
export type ApplyResult = 'applied' | 'duplicate' | 'gap' | 'mismatch';

/** A `Record` so that the compiler flags a type added to the protocol but not to this list. (The bundle targets ES2020: no `Object.hasOwn`.) */
const KNOWN_TYPES: Record<LogEventType, true> = {
  'message.created': true,
  'message.claimed': true,
  'message.appended': true,
  'message.completed': true,
  'message.aborted': true,
  'message.failed': true,
};

/**
 * One conversation as a device sees it: the messages as of `cursor`. Events are applied only
 * in log order; repeats are dropped by cursor, anything that does not follow the cursor is a
 * gap the caller must repair (by resubscribing from `cursor`), and an event that follows it but
 * does not fit the messages is left out (the caller starts over from a snapshot). The view
 * therefore always equals the conversation at `cursor` as its starting state had it.
 */
export class ConversationView {
  cursor: string | undefined;
  readonly messages = new Map<string, Message>();

  constructor(readonly conversationId: string) {}

  /** Replaces the view with a snapshot (from the server or a store). */
  reset(state: StoredConversation): void {
    this.messages.clear();
    for (const message of state.messages) this.messages.set(message.id, { ...message });
    this.cursor = state.cursor;
  }

  apply(event: ConversationEvent): ApplyResult {
    const next = parseCursor(event.cursor);
    const prev = parseCursor(event.prev);
    const current = this.cursor === undefined ? undefined : parseCursor(this.cursor);
    if (!next || !prev) return 'gap';
    if (current && current.epoch === next.epoch && next.seq <= current.seq) return 'duplicate';
    const follows = current ? event.prev === this.cursor : prev.seq === 0;
    if (!follows) return 'gap';
    // A type from a newer server keeps its place in the chain and changes no message (docs/protocol.md).
    if (!Object.prototype.hasOwnProperty.call(KNOWN_TYPES, event.event.type)) {
      this.cursor = event.cursor;
      return 'applied';
    }
    // Apply to a copy first, so an event that does not fit leaves the view untouched.
    const touched = this.messages.get(event.event.messageId);
    const scratch = new Map<string, Message>(touched ? [[touched.id, { ...touched }]] : []);
    if (!applyEvent(scratch, event.event, event.cursor)) return 'mismatch';
    this.messages.set(event.event.messageId, scratch.get(event.event.messageId)!);
    this.cursor = event.cursor;
    return 'applied';
  }

  /** Messages in log order. */
  list(): Message[] {
    return [...this.messages.values()].sort((a, b) => (parseCursor(a.cursor)?.seq ?? 0) - (parseCursor(b.cursor)?.seq ?? 0));
  }

  toStored(): StoredConversation | undefined {
    return this.cursor === undefined ? undefined : { cursor: this.cursor, messages: this.list() };
  }
}
