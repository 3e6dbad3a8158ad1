interface Waiting<V> {
  resolve(value: V): void;
  reject(error: unknown): void;
}

export interface BatchedReadsOptions {
  /** Keys read by one statement at most. */
  maxBatch: number;
  /** Statements running at once; keys asked for meanwhile wait and go out together in the next one. */
  maxInFlight: number;
  /**
   * A statement running longer than this stops counting against `maxInFlight` (default 30 s). One
   * on a connection the network cut off can hang until the system gives up on it (about 15
   * minutes): its callers have long stopped waiting, and the reads after it must not queue behind it.
   */
  stuckAfterMs?: number;
}

const STUCK_AFTER_MS = 30_000;

/**
 * Reads by key, many keys to one statement. Keys asked for in the same turn of the event loop,
 * or while earlier statements run, are read together: a thousand devices opening conversations
 * at once cost a few round trips to Postgres, not a thousand. A quiet service pays one turn
 * of the event loop, no timer.
 */
export class BatchedReads<K, V> {
  private queued = new Map<K, Waiting<V>[]>();
  private inFlight = 0;
  private scheduled = false;

  constructor(
    private readonly read: (keys: K[]) => Promise<Map<K, V>>,
    private readonly missing: V,
    private readonly options: BatchedReadsOptions,
  ) {}

  load(key: K): Promise<V> {
    return new Promise<V>((resolve, reject) => {
      const waiting = this.queued.get(key);
      if (waiting) waiting.push({ resolve, reject });
      else this.queued.set(key, [{ resolve, reject }]);
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= this.options.maxInFlight || this.queued.size === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    while (this.inFlight < this.options.maxInFlight && this.queued.size > 0) {
      const batch = new Map<K, Waiting<V>[]>();
      for (const [key, waiting] of this.queued) {
        if (batch.size === this.options.maxBatch) break;
        batch.set(key, waiting);
      }
      for (const key of batch.keys()) this.queued.delete(key);
      this.inFlight++;
      void this.run(batch);
    }
  }

  private async run(batch: Map<K, Waiting<V>[]>): Promise<void> {
    let counted = true;
    const uncount = (): void => {
      if (!counted) return;
      counted = false;
      this.inFlight--;
      this.schedule();
    };
    const stuck = setTimeout(uncount, this.options.stuckAfterMs ?? STUCK_AFTER_MS);
    stuck.unref?.();
    try {
      const values = await this.read([...batch.keys()]);
      for (const [key, waiting] of batch) {
        const value = values.has(key) ? values.get(key)! : this.missing;
        for (const { resolve } of waiting) resolve(value);
      }
    } catch (error) {
      for (const waiting of batch.values()) for (const { reject } of waiting) reject(error);
    } finally {
      clearTimeout(stuck);
      uncount();
    }
  }
}
