import type { Message } from '../../protocol/src/message.js';

/** What a device keeps of a conversation between runs: its cursor and the messages as of that cursor. */
export interface StoredConversation {
  cursor: string;
  messages: Message[];
}

/**
 * Where a device keeps each conversation's cursor (with the messages it is consistent with), so
 * an app killed mid-answer resumes after restart from where it was, not from the start.
 */
export interface CursorStore {
  load(conversationId: string): Promise<StoredConversation | undefined> | StoredConversation | undefined;
  save(conversationId: string, state: StoredConversation): Promise<void> | void;
  remove(conversationId: string): Promise<void> | void;
}

/** Keeps nothing across restarts; the default. */
export class MemoryCursorStore implements CursorStore {
  private readonly states = new Map<string, StoredConversation>();
  load(conversationId: string): StoredConversation | undefined {
    return this.states.get(conversationId);
  }
  save(conversationId: string, state: StoredConversation): void {
    this.states.set(conversationId, state);
  }
  remove(conversationId: string): void {
    this.states.delete(conversationId);
  }
}

/** The shape of React Native's AsyncStorage, or any string key-value store. */
export interface KeyValueStorage {
  getItem(key: string): Promise<string | null> | string | null;
  setItem(key: string, value: string): Promise<void> | void;
  removeItem(key: string): Promise<void> | void;
}

/**
 * A store over any string key-value storage: `localStorage` in browsers, AsyncStorage in React
 * Native, or an adapter to a native store.
 *
 * @example new KeyValueCursorStore(localStorage)
 * @example new KeyValueCursorStore(AsyncStorage, 'my-app')
 */
export class KeyValueCursorStore implements CursorStore {
  constructor(
    private readonly storage: KeyValueStorage,
    private readonly prefix = 'seqline',
  ) {}

  async load(conversationId: string): Promise<StoredConversation | undefined> {
    const text = await this.storage.getItem(this.key(conversationId));
    if (!text) return undefined;
    try {
      const state = JSON.parse(text) as StoredConversation;
      return typeof state.cursor === 'string' && Array.isArray(state.messages) ? state : undefined;
    } catch {
      return undefined;
    }
  }

  async save(conversationId: string, state: StoredConversation): Promise<void> {
    await this.storage.setItem(this.key(conversationId), JSON.stringify(state));
  }

  async remove(conversationId: string): Promise<void> {
    await this.storage.removeItem(this.key(conversationId));
  }

  private key(conversationId: string): string {
    return `${this.prefix}:${conversationId}`;
  }
}
