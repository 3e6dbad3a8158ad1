import { KeyValueCursorStore, type KeyValueStorage } from './cursor-store.js';

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

const state = (cursor: string) => ({ cursor, messages: [] });

describe('KeyValueCursorStore', () => {
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
});
