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
 * conversations does not fill its storage. A save the storage refuses as full drops the least
 * recently saved others, one at a time until it goes through, but never more than the save adds
 * to what is stored, and a conversation too large for the storage on its own fails to save
 * without emptying it again at every save. A save refused for any other reason drops nothing.
 *
 * @example new KeyValueCursorStore(localStorage)
 * @example new KeyValueCursorStore(AsyncStorage, 'my-app', { maxConversations: 20 })
 */
export class KeyValueCursorStore implements CursorStore {
  private readonly maxConversations: number;
  /** Index updates of this store, one after another (each reads the index, changes it, writes it back). */
  private indexed: Promise<void> = Promise.resolve();
  /** Per conversation whose saves the storage refuses as full: characters of others dropped for it since its last save went through. */
  private readonly freedFor = new Map<string, number>();
  /** Per conversation that did not fit with every other one dropped: the size it had then. */
  private readonly unfit = new Map<string, number>();

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
      if (!isStorageFull(error)) throw error;
      await this.makeRoom(conversationId, text, error);
    }
    this.freedFor.delete(conversationId);
    this.unfit.delete(conversationId);
    // Read again each time: other tabs save through the same index.
    await this.updateIndex(async (order) => {
      const next = order.filter((id) => id !== conversationId);
      next.push(conversationId);
      const dropped = next.splice(0, Math.max(0, next.length - this.maxConversations));
      for (const id of dropped) await this.storage.removeItem(this.key(id));
      return next;
    }).catch(async (error: unknown) => {
      // Left out of the index, it would never be dropped to keep `maxConversations`: it goes too.
      // In the index's turn, and only as this save wrote it: a later save (here or in another tab)
      // may have written it again and indexed it meanwhile.
      await (this.indexed = this.indexed.then(async () => {
        const key = this.key(conversationId);
        if (!(await this.index()).includes(conversationId) && (await this.storage.getItem(key)) === text) await this.storage.removeItem(key);
      }).catch(() => undefined));
      throw error;
    });
  }

  async remove(conversationId: string): Promise<void> {
    this.freedFor.delete(conversationId);
    this.unfit.delete(conversationId);
    await this.storage.removeItem(this.key(conversationId));
    await this.updateIndex(async (order) => order.filter((id) => id !== conversationId));
  }

  private updateIndex(change: (order: string[]) => Promise<string[]>): Promise<void> {
    const run = this.indexed.then(async () => {
      const before = await this.index();
      const after = await change(before);
      if (after.length !== before.length || after.some((id, i) => id !== before[i])) await this.storage.setItem(this.indexKey(), JSON.stringify(after));
    });
    // One failed update does not stop the ones after it.
    this.indexed = run.catch(() => undefined);
    return run;
  }

  /**
   * Drops the least recently saved other conversations until `text` fits, but no more of them than
   * it adds to what is stored: once that much was dropped for it and the storage still refuses,
   * room was not what it lacked (or it does not fit at all), and dropping more would only empty
   * the storage one save after another. One that did not fit with all the others dropped drops
   * nothing more until it is smaller than it was then.
   */
  private async makeRoom(conversationId: string, text: string, refusal: unknown): Promise<void> {
    if (text.length >= (this.unfit.get(conversationId) ?? Infinity)) throw refusal;
    const stored = (await this.storage.getItem(this.key(conversationId)))?.length ?? 0;
    for (;;) {
      const freed = this.freedFor.get(conversationId) ?? 0;
      if (freed >= text.length - stored) throw refusal;
      const evicted = await this.evictOldest(conversationId);
      if (evicted === undefined) {
        this.unfit.set(conversationId, text.length);
        throw refusal;
      }
      this.freedFor.set(conversationId, freed + evicted);
      try {
        await this.storage.setItem(this.key(conversationId), text);
        return;
      } catch (error) {
        if (!isStorageFull(error)) throw error;
        refusal = error;
      }
    }
  }

  /** Drops the least recently saved conversation other than `keep`; the characters it took, or undefined when there is none. */
  private async evictOldest(keep: string): Promise<number | undefined> {
    let evicted: number | undefined;
    await this.updateIndex(async (order) => {
      const oldest = order.find((id) => id !== keep);
      if (oldest === undefined) return order;
      evicted = (await this.storage.getItem(this.key(oldest)))?.length ?? 0;
      await this.storage.removeItem(this.key(oldest));
      return order.filter((id) => id !== oldest);
    });
    return evicted;
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

/**
 * A refusal for lack of room: `QuotaExceededError` (browsers; Firefox's older name too) or a
 * native store's "full" (AsyncStorage on SQLite: `SQLITE_FULL`, "database or disk is full").
 */
function isStorageFull(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { name, message } = error as { name?: unknown; message?: unknown };
  if (name === 'QuotaExceededError' || name === 'NS_ERROR_DOM_QUOTA_REACHED') return true;
  return typeof message === 'string' && /quota|full|no space/i.test(message);
}
