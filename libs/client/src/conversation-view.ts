import { parseCursor } from '../../protocol/src/cursor.js';
import type { ConversationEvent } from '../../protocol/src/events.js';
import type { Message } from '../../protocol/src/message.js';
import { applyEvent } from '../../protocol/src/message-reducer.js';
import type { StoredConversation } from './cursor-store.js';

/** What became of one event offered to a view. */
export type ApplyResult = 'applied' | 'duplicate' | 'gap';

/**
 * One conversation as a device sees it: the messages as of `cursor`. Events are applied only
 * in log order; repeats are dropped by cursor, and anything that does not follow the cursor is a
 * gap the caller must repair (by resubscribing from `cursor`). The view therefore always equals
 * the true conversation at `cursor`: it may be behind, never wrong.
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
    // Apply to a copy first, so an event that does not fit leaves the view untouched.
    const touched = this.messages.get(event.event.messageId);
    const scratch = new Map<string, Message>(touched ? [[touched.id, { ...touched }]] : []);
    if (!applyEvent(scratch, event.event, event.cursor)) return 'gap';
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
