import type { CursorStore, StoredConversation } from './cursor-store.js';

/** How long a load may take before the conversation starts as if nothing were stored. */
const LOAD_TIMEOUT_MS = 5_000;

/**
 * The client's view of the app's store: a store that fails (storage full, storage unavailable, a
 * native module that rejects) costs the device its saved place, never its stream. A failed load
 * counts as nothing stored (the server sends a snapshot), and so does one not answered within 5 s;
 * a failed save or remove is dropped, and the next save tries again.
 */
export function tolerantStore(store: CursorStore, loadTimeoutMs = LOAD_TIMEOUT_MS): CursorStore {
  return {
    async load(conversationId: string): Promise<StoredConversation | undefined> {
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        // A load that never settles (a storage blocked by another tab, a hung native module) would hold the subscription for good.
        const gaveUp = new Promise<undefined>((resolve) => (timer = setTimeout(resolve, loadTimeoutMs, undefined)));
        return await Promise.race([Promise.resolve(store.load(conversationId)), gaveUp]);
      } catch {
        return undefined;
      } finally {
        clearTimeout(timer);
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
