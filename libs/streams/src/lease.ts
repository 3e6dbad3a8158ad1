import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { isTransient } from './election-retry.js';
import { createLeaseBucket } from './lease-bucket.js';
import { LAPSE_SHARE, renewIfStillHeld } from './lease-entry.js';
import { waitAtMost } from './wait-at-most.js';

/** How long `release` waits for a take or renewal under way. */
const RELEASE_WAIT_MS = 2_000;

export interface LeaseOptions {
  bucket: string;
  key: string;
  /** The lease lapses this long after its holder last renewed it. */
  ttlMs: number;
  /** Identifies this holder in the bucket, for operators. */
  holder: string;
  /** JetStream replicas of the bucket. */
  replicas?: number;
}

/**
 * A lease in a JetStream key-value bucket whose entries expire: whoever creates the key holds
 * it and renews it by revision; if the holder dies, the entry expires and another takes over.
 * Used so exactly one instance runs the persister at a time.
 */
export class Lease {
  private revision = 0;
  private timer?: ReturnType<typeof setInterval>;
  private listeners = new Set<(held: boolean) => void>();
  /** The take or renewal under way, if any. */
  private ticking?: Promise<void>;
  /** Released: nothing renews or takes the lease any more. */
  private stopped = false;
  /** When the entry was last written: it lapses `ttlMs` later at the earliest. */
  private renewedAt = 0;
  /** The revision this holder last wrote, held or not: what a release may still delete. */
  private written = 0;
  /** Ends holding a little before the entry can lapse, unless a renewal comes first. */
  private lapse?: ReturnType<typeof setTimeout>;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly kv: KV,
    private readonly options: LeaseOptions,
  ) {}

  static async open(nc: NatsConnection, options: LeaseOptions): Promise<Lease> {
    return new Lease(nc, await createLeaseBucket(nc, options), options);
  }

  /** Creates the bucket again if it went (NATS lost its data): until then nobody can take the lease. */
  async ensureBucket(): Promise<void> {
    await createLeaseBucket(this.nc, this.options);
  }

  /** Who holds the lease now, or null when nobody does; reads without taking part. */
  static async holderOf(nc: NatsConnection, bucket: string, key: string): Promise<string | null> {
    const kv = await new Kvm(nc).open(bucket);
    const entry = await kv.get(key);
    return entry && entry.operation === 'PUT' ? entry.string() : null;
  }

  get held(): boolean {
    return this.revision > 0;
  }

  /** Calls `listener` whenever this holder gains or loses the lease; returns what stops it. */
  onChange(listener: (held: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  start(): void {
    this.tick();
    this.timer = setInterval(() => this.tick(), Math.max(50, Math.floor(this.options.ttlMs / 4)));
  }

  /** Stops renewing and gives the lease up at once, so another instance need not wait for it to lapse. */
  async release(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.lapse);
    // A take under way gives up what it gets (see takeOrRenew): released means released once this
    // resolves. Waited for a bounded time: with NATS away it could take a request timeout or two.
    if (this.ticking) await waitAtMost(this.ticking, RELEASE_WAIT_MS);
    // Also after letting go on its own: the entry may still be this holder's, at the revision it last wrote.
    const revision = this.held ? this.revision : this.written;
    if (revision > 0) {
      this.set(0);
      const deleted = await this.kv.delete(this.options.key, { previousSeq: revision }).then(
        () => true,
        () => false,
      );
      // A renewal that landed with its reply lost moved the entry to a revision this holder never
      // heard of: deleted as it is then, or it keeps every other instance out until it lapses.
      if (!deleted) await this.giveBackIfOurs();
    }
  }

  private async giveBackIfOurs(): Promise<void> {
    const entry = await this.kv.get(this.options.key).catch(() => null);
    if (entry?.operation === 'PUT' && entry.string() === this.options.holder) await this.kv.delete(this.options.key, { previousSeq: entry.revision }).catch(() => undefined);
  }

  private tick(): void {
    if (this.stopped) return;
    this.ticking ??= this.takeOrRenew().finally(() => (this.ticking = undefined));
  }

  private async takeOrRenew(): Promise<void> {
    const started = Date.now();
    let revision: number | null;
    try {
      revision = this.held ? await this.kv.update(this.options.key, this.options.holder, this.revision) : await this.kv.create(this.options.key, this.options.holder);
    } catch (error) {
      // An election: the entry is still ours until it lapses, and the next renewal may go through.
      if (this.held && isTransient(error) && started - this.renewedAt < this.options.ttlMs / 2) return;
      // A renewal or a take may have gone through with its reply lost: the entry then names this holder, and renewed it stays ours.
      revision = await renewIfStillHeld(this.kv, this.options.key, this.options.holder);
    }
    if (revision === null) {
      // Someone else holds it, or NATS is away for long: either way we do not.
      this.written = 0;
      this.set(0);
      return;
    }
    if (this.stopped) {
      // Released while this renewal was under way: what it got is given up too, or the lease would stay held with no one renewing it.
      await this.kv.delete(this.options.key, { previousSeq: revision }).catch(() => undefined);
      return;
    }
    this.written = revision;
    // Back after the point this holder lets go at: too late to count on (the next tick renews it again).
    if (Date.now() >= started + this.options.ttlMs * LAPSE_SHARE) return;
    this.set(revision);
    this.renewedAt = started;
    // Renewals that keep failing, or hang for a request timeout as long as the lease (NATS away,
    // an election), must not leave this instance holding on after the entry has lapsed and
    // another has taken it: it lets go itself. A renewal that goes through later takes it back.
    clearTimeout(this.lapse);
    this.lapse = setTimeout(() => this.set(0), Math.max(0, started + this.options.ttlMs * LAPSE_SHARE - Date.now()));
    this.lapse.unref?.();
  }

  private set(revision: number): void {
    const was = this.held;
    this.revision = revision;
    if (was !== this.held) for (const listener of this.listeners) listener(this.held);
  }
}
