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

/** Conversations a `KeyValueCursorStore` keeps by default; the least recently saved go first. */
export const DEFAULT_STORED_CONVERSATIONS = 50;

/**
 * A store over any string key-value storage: `localStorage` in browsers, AsyncStorage in React
 * Native, or an adapter to a native store. It keeps the `maxConversations` most recently saved
 * conversations (an index under `<prefix>:@index` says which), so a device that visits many
 * conversations does not fill its storage; a save the storage refuses (full) drops the least
 * recently saved one and is tried once more.
 *
 * @example new KeyValueCursorStore(localStorage)
 * @example new KeyValueCursorStore(AsyncStorage, 'my-app', { maxConversations: 20 })
 */
export class KeyValueCursorStore implements CursorStore {
  private readonly maxConversations: number;
  /** The last id this store saved: saving it again needs no write to the index. */
  private lastSaved?: string;

  constructor(
    private readonly storage: KeyValueStorage,
    private readonly prefix = 'seqline',
    options: { maxConversations?: number } = {},
  ) {
    this.maxConversations = Math.max(1, options.maxConversations ?? DEFAULT_STORED_CONVERSATIONS);
  }

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
    const text = JSON.stringify(state);
    try {
      await this.storage.setItem(this.key(conversationId), text);
    } catch (error) {
      // Full: the least recently saved other conversation makes room, then one more try.
      if (!(await this.evictOldest(conversationId))) throw error;
      await this.storage.setItem(this.key(conversationId), text);
    }
    if (this.lastSaved === conversationId) return;
    this.lastSaved = conversationId;
    // Read again each time: other tabs save through the same index.
    const order = (await this.index()).filter((id) => id !== conversationId);
    order.push(conversationId);
    const dropped = order.splice(0, Math.max(0, order.length - this.maxConversations));
    for (const id of dropped) await this.storage.removeItem(this.key(id));
    await this.storage.setItem(this.indexKey(), JSON.stringify(order));
  }

  async remove(conversationId: string): Promise<void> {
    await this.storage.removeItem(this.key(conversationId));
    if (this.lastSaved === conversationId) this.lastSaved = undefined;
    const order = await this.index();
    if (order.includes(conversationId)) await this.storage.setItem(this.indexKey(), JSON.stringify(order.filter((id) => id !== conversationId)));
  }

  private async evictOldest(keep: string): Promise<boolean> {
    const order = await this.index();
    const oldest = order.find((id) => id !== keep);
    if (oldest === undefined) return false;
    await this.storage.removeItem(this.key(oldest));
    await this.storage.setItem(this.indexKey(), JSON.stringify(order.filter((id) => id !== oldest)));
    return true;
  }

  private async index(): Promise<string[]> {
    try {
      const order = JSON.parse((await this.storage.getItem(this.indexKey())) ?? '[]') as unknown;
      return Array.isArray(order) ? order.filter((id): id is string => typeof id === 'string') : [];
    } catch {
      return [];
    }
  }

  /** `@` is never in a conversation id, so no conversation's key is the index's. */
  private indexKey(): string {
    return `${this.prefix}:@index`;
  }

  private key(conversationId: string): string {
    return `${this.prefix}:${conversationId}`;
  }
}
