import type { CursorStore, StoredConversation } from './cursor-store.js';

/**
 * The client's view of the app's store: a store that fails (storage full, storage unavailable, a
 * native module that rejects) costs the device its saved place, never its stream. A failed load
 * counts as nothing stored (the server sends a snapshot); a failed save or remove is dropped, and
 * the next save tries again.
 */
export function tolerantStore(store: CursorStore): CursorStore {
  return {
    async load(conversationId: string): Promise<StoredConversation | undefined> {
      try {
        return await store.load(conversationId);
      } catch {
        return undefined;
      }
    },
    async save(conversationId: string, state: StoredConversation): Promise<void> {
      try {
        await store.save(conversationId, state);
      } catch {
        // Kept in memory all the same; only a restart would start from an older place.
      }
    },
    async remove(conversationId: string): Promise<void> {
      try {
        await store.remove(conversationId);
      } catch {
        // A stale entry left behind is refused by the server (CURSOR_EXPIRED) and replaced by a snapshot.
      }
    },
  };
}
