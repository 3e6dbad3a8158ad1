import type { CursorStore, StoredConversation } from './cursor-store.js';

/** How long a store call may take before the client goes on without it. */
const STORE_TIMEOUT_MS = 5_000;

/**
 * The client's view of the app's store: a store that fails (storage full, storage unavailable, a
 * native module that rejects) costs the device its saved place, never its stream. A failed load
 * counts as nothing stored (the server sends a snapshot), and so does one not answered within 5 s;
 * a failed save or remove is dropped, and the next save tries again. A save or remove not answered
 * within 5 s is no longer waited for (it may still land): `close()` waits for the saves.
 */
export function tolerantStore(store: CursorStore, timeoutMs = STORE_TIMEOUT_MS): CursorStore {
  return {
    async load(conversationId: string): Promise<StoredConversation | undefined> {
      // A load that never settles (a storage blocked by another tab, a hung native module) would hold the subscription for good.
      return (await within(() => store.load(conversationId), timeoutMs)) ?? undefined;
    },
    async save(conversationId: string, state: StoredConversation): Promise<void> {
      // Kept in memory all the same when it fails; only a restart would start from an older place.
      await within(() => store.save(conversationId, state), timeoutMs);
    },
    async remove(conversationId: string): Promise<void> {
      // A stale entry left behind is refused by the server (CURSOR_EXPIRED) and replaced by a snapshot.
      await within(() => store.remove(conversationId), timeoutMs);
    },
  };
}

/** What `call` gives, or undefined when it throws, rejects or takes longer than `ms`. */
async function within<T>(call: () => T | Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const gaveUp = new Promise<undefined>((resolve) => (timer = setTimeout(resolve, ms, undefined)));
    // Called at once, as the store was before: a store that answers at once is read in the same turn.
    return await Promise.race([Promise.resolve(call()), gaveUp]);
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}
