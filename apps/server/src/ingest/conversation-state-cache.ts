import type { ConversationState, MessageState } from '@seqline/persistence';
import { blockChars, partitionOf } from '@seqline/protocol';

/** Bytes counted for a message besides its text, and for a conversation besides its messages. */
const OVERHEAD_BYTES = 256;

/** Bytes counted for each applied part's length: a raw agent sending one character a part holds far more of these than of text. */
const PART_BYTES = 8;
/** Bytes counted for each producer an answer remembers having been taken over from (up to 128 characters). */
const FORMER_PRODUCER_BYTES = 128;

/**
 * What a state holds, roughly: two bytes a character of text and of blocks (text blocks repeat
 * the text), a number for each part, and the producers taken over from.
 */
export function stateBytes(state: ConversationState): number {
  let bytes = OVERHEAD_BYTES;
  for (const message of state.messages.values()) bytes += messageBytes(message);
  return bytes;
}

/**
 * One message's share of `stateBytes`. The writer counts each write as this message's change:
 * a value set whole replaces what it held, and a text block repeats the text, which a count of
 * the event alone gets wrong (the total drifts until the cache drops everything, or holds twice
 * its bound).
 */
export function messageBytes(message: MessageState): number {
  const textBlocks = message.blocks?.some((block) => block.type === 'text') ? message.text.length : 0;
  return OVERHEAD_BYTES + 2 * (message.text.length + textBlocks + blockChars(message.blocks)) + PART_BYTES * message.partLengths.length + FORMER_PRODUCER_BYTES * (message.formerProducers?.length ?? 0);
}

/**
 * The writer's states of the conversations it wrote last, the least recently used dropped first
 * once there are more than `maxConversations` or they hold more than `maxBytes` (a conversation's
 * state holds every message's text, so a count alone would not bound memory).
 */
export class ConversationStateCache {
  private readonly states = new Map<string, { state: ConversationState; bytes: number }>();
  private totalBytes = 0;

  constructor(
    private readonly maxConversations: number,
    private readonly maxBytes: number,
  ) {}

  get size(): number {
    return this.states.size;
  }

  get bytes(): number {
    return this.totalBytes;
  }

  /** The state, now the most recently used. */
  get(conversationId: string): ConversationState | undefined {
    const cached = this.states.get(conversationId);
    if (!cached) return undefined;
    this.states.delete(conversationId);
    this.states.set(conversationId, cached);
    return cached.state;
  }

  set(conversationId: string, state: ConversationState): void {
    this.delete(conversationId);
    const bytes = stateBytes(state);
    this.states.set(conversationId, { state, bytes });
    this.totalBytes += bytes;
    this.evict(conversationId);
  }

  /** Counts what a state gained since it was last counted (its messages changed in place). */
  recount(conversationId: string): void {
    const cached = this.states.get(conversationId);
    if (!cached) return;
    const bytes = stateBytes(cached.state);
    this.totalBytes += bytes - cached.bytes;
    cached.bytes = bytes;
    this.evict(conversationId);
  }

  /** Adds what one write changed in a state (its message's bytes after, less before), without walking its other messages. */
  grew(conversationId: string, bytes: number): void {
    const cached = this.states.get(conversationId);
    if (!cached) return;
    cached.bytes += bytes;
    this.totalBytes += bytes;
    this.evict(conversationId);
  }

  /** Drops the states of one write partition (another instance writes them now: they would only go stale). */
  dropPartition(partition: number): void {
    for (const conversationId of [...this.states.keys()]) {
      if (partitionOf(conversationId) === partition) this.delete(conversationId);
    }
  }

  clear(): void {
    this.states.clear();
    this.totalBytes = 0;
  }

  /** Forgets one conversation's state: the next write builds it again from the log. */
  delete(conversationId: string): void {
    const cached = this.states.get(conversationId);
    if (!cached) return;
    this.states.delete(conversationId);
    this.totalBytes -= cached.bytes;
  }

  /** Drops the least recently used states until within bounds, never the one just used. */
  private evict(keep: string): void {
    for (const conversationId of this.states.keys()) {
      if (this.states.size <= this.maxConversations && this.totalBytes <= this.maxBytes) return;
      if (conversationId !== keep) this.delete(conversationId);
    }
  }
}
