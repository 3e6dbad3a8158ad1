import { KeyValueCursorStore, type StoredConversation, type KeyValueStorage } from './cursor-store.js';

/** A string storage that, like a browser's, refuses writes past a number of keys. */
class SmallStorage implements KeyValueStorage {
  readonly items = new Map<string, string>();
  constructor(private readonly maxKeys = Infinity) {}
  getItem(key: string): string | null {
    return this.items.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    if (!this.items.has(key) && this.items.size >= this.maxKeys) throw new Error('QuotaExceededError');
    this.items.set(key, value);
  }
  removeItem(key: string): void {
    this.items.delete(key);
  }
}

/** A storage with room for so many characters in all, refusing as browsers do (a `QuotaExceededError`), or with `failure` for every write. */
class CharStorage implements KeyValueStorage {
  readonly items = new Map<string, string>();
  failure?: Error;
  constructor(private readonly maxChars: number) {}
  getItem(key: string): string | null {
    return this.items.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    if (this.failure) throw this.failure;
    const used = [...this.items].reduce((sum, [k, v]) => sum + (k === key ? 0 : v.length), 0);
    if (used + value.length > this.maxChars) throw Object.assign(new Error('The quota has been exceeded.'), { name: 'QuotaExceededError' });
    this.items.set(key, value);
  }
  removeItem(key: string): void {
    this.items.delete(key);
  }
}

const state = (cursor: string) => ({ cursor, messages: [] });
/** A state whose stored form is about `chars` characters long. */
const sized = (cursor: string, chars: number) => ({ cursor, messages: [{ id: 'm', text: 'x'.repeat(chars) }] as unknown as StoredConversation['messages'] });

describe('KeyValueCursorStore', () => {
  it('takes back a conversation it could not add to its index, where it stayed stored past maxConversations for good', async () => {
    const storage = new SmallStorage();
    const store = new KeyValueCursorStore(storage, 'app', { maxConversations: 2 });
    const setItem = storage.setItem.bind(storage);
    storage.setItem = (key, value) => {
      if (key === 'app:@index') throw Object.assign(new Error('The quota has been exceeded.'), { name: 'QuotaExceededError' });
      setItem(key, value);
    };
    await expect(store.save('a', state('e1-1'))).rejects.toThrow('quota');
    expect([...storage.items.keys()]).toEqual([]);
  });

  it('keeps the most recently saved conversations only, dropping the least recently saved', async () => {
    const storage = new SmallStorage();
    const store = new KeyValueCursorStore(storage, 'app', { maxConversations: 2 });
    await store.save('a', state('e1-1'));
    await store.save('b', state('e1-2'));
    await store.save('a', state('e1-3')); // a is the most recent again
    await store.save('c', state('e1-4'));
    expect([...storage.items.keys()].sort()).toEqual(['app:@index', 'app:a', 'app:c']);
    expect(await store.load('a')).toEqual(state('e1-3'));
    expect(await store.load('b')).toBeUndefined();
    expect(JSON.parse(storage.items.get('app:@index')!)).toEqual(['a', 'c']);
  });

  it('keeps a conversation named like the index apart from it', async () => {
    const storage = new SmallStorage();
    const store = new KeyValueCursorStore(storage);
    await store.save('index', state('e1-1'));
    expect(await store.load('index')).toEqual(state('e1-1'));
    expect(JSON.parse(storage.items.get('seqline:@index')!)).toEqual(['index']);
  });

  it('makes room when the storage is full: the least recently saved other conversation goes', async () => {
    // Room for the index and two conversations.
    const storage = new SmallStorage(3);
    const store = new KeyValueCursorStore(storage);
    await store.save('a', state('e1-1'));
    await store.save('b', state('e1-2'));
    await store.save('c', state('e1-3'));
    expect(await store.load('a')).toBeUndefined();
    expect(await store.load('c')).toEqual(state('e1-3'));
    expect(JSON.parse(storage.items.get('seqline:@index')!)).toEqual(['b', 'c']);
  });

  it('loses no conversation from the index when several are saved at once', async () => {
    const storage = new SmallStorage();
    const store = new KeyValueCursorStore(storage, 'app', { maxConversations: 3 });
    await Promise.all(['a', 'b', 'c', 'd'].map((id, i) => store.save(id, state(`e1-${i}`))));
    expect(JSON.parse(storage.items.get('app:@index')!)).toEqual(['b', 'c', 'd']);
    expect([...storage.items.keys()].sort()).toEqual(['app:@index', 'app:b', 'app:c', 'app:d']);
  });

  it('forgets a removed conversation in the index too', async () => {
    const storage = new SmallStorage();
    const store = new KeyValueCursorStore(storage);
    await store.save('a', state('e1-1'));
    await store.save('b', state('e1-2'));
    await store.remove('a');
    expect(JSON.parse(storage.items.get('seqline:@index')!)).toEqual(['b']);
    expect(await store.load('a')).toBeUndefined();
  });

  it('stops dropping others for a conversation too large to fit in the storage at all', async () => {
    const storage = new CharStorage(1_000);
    const store = new KeyValueCursorStore(storage);
    for (const id of ['a', 'b', 'c']) await store.save(id, sized('e1-1', 200));
    // Saved again and again while it streams, each time a little larger, never fitting.
    for (let i = 0; i < 5; i++) await expect(store.save('big', sized(`e1-${i + 2}`, 1_200 + i * 10))).rejects.toThrow('quota');
    // The first save dropped the others looking for room (the storage cannot tell how much is missing).
    expect((await Promise.all(['a', 'b', 'c'].map((id) => store.load(id)))).filter(Boolean)).toEqual([]);
    // Known not to fit even alone, it drops nothing more: a conversation saved now is kept.
    await store.save('d', sized('e1-9', 200));
    for (let i = 0; i < 5; i++) await expect(store.save('big', sized(`e1-${i + 7}`, 1_300 + i * 10))).rejects.toThrow('quota');
    expect(await store.load('d')).toEqual(sized('e1-9', 200));
  });

  it('drops others only as far as a growing conversation needs, and drops nothing when the storage fails otherwise', async () => {
    const storage = new CharStorage(1_000);
    const store = new KeyValueCursorStore(storage);
    for (const id of ['a', 'b', 'c', 'd']) await store.save(id, sized('e1-1', 150));
    await store.save('big', sized('e1-2', 150));
    // Growing past what is left: one other conversation (the least recently saved) makes room, no more.
    await store.save('big', sized('e1-3', 250));
    expect(await store.load('a')).toBeUndefined();
    for (const id of ['b', 'c', 'd']) expect(await store.load(id)).toEqual(sized('e1-1', 150));
    expect(await store.load('big')).toEqual(sized('e1-3', 250));
    storage.failure = new Error('I/O error');
    await expect(store.save('big', sized('e1-4', 260))).rejects.toThrow('I/O error');
    for (const id of ['b', 'c', 'd']) expect(await store.load(id)).toEqual(sized('e1-1', 150));
  });
});
