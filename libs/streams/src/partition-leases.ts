import type { KV } from '@nats-io/kv';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { isTransient } from './election-retry.js';
import { createLeaseBucket } from './lease-bucket.js';
import { LAPSE_SHARE, renewIfStillHeld } from './lease-entry.js';
import { waitAtMost } from './wait-at-most.js';

export interface PartitionLeasesOptions {
  /** A key-value bucket whose entries expire `ttlMs` after their last write. */
  bucket: string;
  partitions: number;
  ttlMs: number;
  /** This instance, as a key-value key token ([-_=a-zA-Z0-9]). */
  holder: string;
  /** JetStream replicas of the bucket. */
  replicas?: number;
}

/** What the owner of a partition does with it: start or stop answering for its conversations. */
export interface PartitionOwner {
  acquired(partition: number): void;
  /** Stop answering for the partition; the lease is given up once this resolves. */
  released(partition: number): Promise<void>;
}

const memberPrefix = 'member.';
/** How long `stop` waits for a renewal or rebalance under way: with NATS away it could take several request timeouts. */
const STOP_WAIT_MS = 2_000;
/**
 * An instance holding its share lists the bucket only every this many renewals: listing costs a
 * consumer on the bucket each time, the largest part of an idle instance's work. A joining
 * instance is noticed within this many renewals; one under its share lists at every renewal.
 */
const LIST_EVERY = 3;
const partitionKey = (partition: number): string => `partition.${partition}`;

/**
 * Shares numbered partitions among the live instances through leases in a JetStream key-value
 * bucket. Each instance heartbeats a member key and holds about its fair share of partitions
 * (all of them, divided by the members it sees): it takes free ones up to that share and gives
 * back what is over it, so a new instance gets its share within a few renewals. A lease an
 * instance stops renewing (it died, or lost NATS) lapses after `ttlMs` and another takes it.
 * Two instances may briefly both think they hold a partition; callers must stay correct then.
 * An instance whose renewals stop coming back (NATS away, the bucket's leader gone) lets each
 * partition go itself shortly before its entry can lapse, so that window stays short: it does not
 * wait for the renewals to time out, which can take longer than the lease.
 */
export class PartitionLeases {
  private readonly held = new Map<number, number>();
  /** When each held entry was last written: it lapses `ttlMs` later at the earliest. */
  private readonly renewedAt = new Map<number, number>();
  /** Per held partition, when this instance stops counting on it unless a renewal comes back first. */
  private readonly lapses = new Map<number, ReturnType<typeof setTimeout>>();
  /** Per partition let go whose owner is still stopping: its lease is given back only once that is done. */
  private readonly releasing = new Map<number, Promise<void>>();
  private timer?: ReturnType<typeof setInterval>;
  private ticking?: Promise<void>;
  private owner?: PartitionOwner;
  private stopped = false;
  /** Members seen at the last listing, and renewals since. */
  private members = 1;
  private sinceListing = 0;
  private nudges?: Subscription;
  private announced = false;
  /** Another instance joined or left: list at the next tick, whatever the count. */
  private listNext = false;

  /** This instance's name among the partitions' holders. */
  get holder(): string {
    return this.options.holder;
  }

  private constructor(
    private readonly nc: NatsConnection,
    private readonly kv: KV,
    private readonly options: PartitionLeasesOptions,
  ) {}

  /**
   * Where an instance says it joined or left, so the others share the partitions out again at once
   * rather than at their next listing (up to `LIST_EVERY` renewals later). A nudge that is lost
   * (NATS away) only leaves that to the listing.
   */
  private get nudgeSubject(): string {
    return `_SEQLINE.${this.options.bucket}.rebalance`;
  }

  static async open(nc: NatsConnection, options: PartitionLeasesOptions): Promise<PartitionLeases> {
    return new PartitionLeases(nc, await createLeaseBucket(nc, options), options);
  }

  /** Creates the bucket again if it went (NATS lost its data): until then no partition can be taken. */
  async ensureBucket(): Promise<void> {
    await createLeaseBucket(this.nc, this.options);
  }

  /** Partitions this instance holds now. */
  get owned(): number[] {
    return [...this.held.keys()].sort((a, b) => a - b);
  }

  owns(partition: number): boolean {
    return this.held.has(partition);
  }

  start(owner: PartitionOwner): void {
    this.owner = owner;
    this.nudges = this.nc.subscribe(this.nudgeSubject, {
      callback: (error, msg) => {
        if (error || msg.string() === this.options.holder || this.stopped) return;
        this.listNext = true;
        // A tick under way may have listed before the change: one more follows it.
        void (this.ticking ?? Promise.resolve()).then(() => this.tick());
      },
    });
    // Three renewals per lease period: one may fail (a NATS leader election) and the lease still holds.
    this.timer = setInterval(() => void this.tick(), Math.max(50, Math.floor(this.options.ttlMs / 3)));
    void this.tick();
  }

  /** Gives every partition back at once (after its owner stopped answering), so others need not wait for the leases to lapse. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.nudges?.unsubscribe();
    for (const lapse of this.lapses.values()) clearTimeout(lapse);
    this.lapses.clear();
    if (this.ticking) await waitAtMost(this.ticking, STOP_WAIT_MS);
    await Promise.all(this.owned.map((partition) => this.release(partition)));
    await this.leaveMembers();
    this.nudge();
  }

  private nudge(): void {
    try {
      this.nc.publish(this.nudgeSubject, this.options.holder);
    } catch {
      // The connection is closing: the others notice at their next listing.
    }
  }

  private tick(): Promise<void> {
    this.ticking ??= this.rebalance()
      .catch(() => undefined)
      .finally(() => (this.ticking = undefined));
    return this.ticking;
  }

  private async rebalance(): Promise<void> {
    if (this.stopped) return;
    await this.renew();
    await this.kv.put(`${memberPrefix}${this.options.holder}`, String(Date.now()));
    // Once its member entry is there: the others give back their surplus now.
    if (!this.announced) {
      this.announced = true;
      this.nudge();
    }
    if (this.stopped) {
      // `stop` gave up waiting and deleted the member key before this put landed: a member left
      // behind would shrink every other instance's share until it lapsed.
      await this.leaveMembers();
      return;
    }
    const atShare = this.held.size === Math.ceil(this.options.partitions / this.members);
    if (atShare && !this.listNext && ++this.sinceListing < LIST_EVERY) return;
    this.sinceListing = 0;
    this.listNext = false;
    const keys = new Set<string>();
    for await (const key of await this.kv.keys()) keys.add(key);
    const members = (this.members = Math.max(1, [...keys].filter((key) => key.startsWith(memberPrefix)).length));
    const share = Math.ceil(this.options.partitions / members);
    if (this.stopped) return;
    // Over the share (someone joined): give the surplus back.
    // All at once: each waits for its commands in flight, and one after another they could
    // outlast the leases this instance keeps, which renew only once this tick is over.
    await Promise.all(this.owned.slice(share).map((partition) => this.release(partition)));
    // Under it: take free partitions, starting somewhere random so instances starting together spread out.
    const offset = Math.floor(Math.random() * this.options.partitions);
    const tried = new Set<number>();
    while (this.held.size < share && !this.stopped) {
      const free: number[] = [];
      for (let i = 0; i < this.options.partitions && this.held.size + free.length < share; i++) {
        const partition = (offset + i) % this.options.partitions;
        if (!this.held.has(partition) && !keys.has(partitionKey(partition)) && !tried.has(partition)) free.push(partition);
      }
      if (free.length === 0) return;
      for (const partition of free) tried.add(partition);
      // All at once: taken one after another from a slow bucket, the first could lapse before the
      // last is taken, since they renew only once this tick is over. One another instance took
      // meanwhile is made up for with the next free one, in this tick.
      await Promise.all(free.map((partition) => this.take(partition)));
    }
  }

  private async take(partition: number): Promise<void> {
    if (this.stopped) return;
    try {
      const started = Date.now();
      const revision = await this.kv.create(partitionKey(partition), this.options.holder);
      // Stopped while the take was on its way (`stop` gave up waiting): give it straight back.
      // Answered too late to count on: it may lapse before this instance has done anything with it.
      if (this.stopped || !this.hold(partition, revision, started)) {
        await this.giveBack(partition, revision);
        return;
      }
      this.owner?.acquired(partition);
    } catch {
      // Taken by another instance meanwhile; or taken here, with the reply lost.
      if (!this.stopped && (await this.stillOurs(partition, false))) this.owner?.acquired(partition);
    }
  }

  private async renew(): Promise<void> {
    // All at once: one flush to NATS for every renewal instead of a round trip each.
    await Promise.all(
      [...this.held].map(async ([partition, revision]) => {
        const started = Date.now();
        try {
          const renewed = await this.kv.update(partitionKey(partition), this.options.holder, revision);
          // Released while the renewal was on its way (`stop` gave up waiting, or it lapsed here):
          // the release named the old revision, so give it back at this one. Also when the reply
          // came too late to count on: the owner has stopped, or is about to stop, answering for it.
          if (!this.held.has(partition) || !this.hold(partition, renewed, started)) {
            await this.letGo(partition);
            return await this.giveBack(partition, renewed);
          }
        } catch (error) {
          // Let go while the renewal was out (it lapsed here, or `stop` released it): its owner
          // stopped answering for it, so it is not taken back unannounced; if the renewal landed
          // with its reply lost, the entry is given back.
          if (!this.held.has(partition)) {
            await this.releasing.get(partition);
            return await this.giveBackIfOurs(partition);
          }
          // An election: the entry is still ours until it lapses, and the next renewal may go through.
          if (isTransient(error) && started - (this.renewedAt.get(partition) ?? 0) < this.options.ttlMs / 2) return;
          if (await this.stillOurs(partition, true)) return;
          // Lapsed and taken, or NATS away for long: either way it is not ours to answer for any more.
          await this.letGo(partition);
        }
      }),
    );
  }

  /**
   * See `renewIfStillHeld`. `held`: the partition was held when the check began; one let go
   * meanwhile (it lapsed here while the check waited, or `stop` released it) has had its owner
   * stop answering for it, so it is given back rather than held again unannounced.
   */
  private async stillOurs(partition: number, held: boolean): Promise<boolean> {
    const started = Date.now();
    const revision = await renewIfStillHeld(this.kv, partitionKey(partition), this.options.holder);
    if (revision === null) return false;
    if ((held || this.stopped) && !this.held.has(partition)) {
      await this.releasing.get(partition);
      await this.giveBack(partition, revision);
      return false;
    }
    if (!this.hold(partition, revision, started)) {
      await this.giveBack(partition, revision);
      return false;
    }
    return true;
  }

  /**
   * Counts on the entry at `revision`, written by a request sent at `started`, until shortly
   * before it can lapse; false when the reply came too late for that.
   */
  private hold(partition: number, revision: number, started: number): boolean {
    const until = started + this.options.ttlMs * LAPSE_SHARE;
    if (Date.now() >= until) return false;
    this.held.set(partition, revision);
    this.renewedAt.set(partition, started);
    clearTimeout(this.lapses.get(partition));
    const lapse = setTimeout(() => void this.letGo(partition), until - Date.now());
    lapse.unref?.();
    this.lapses.set(partition, lapse);
    return true;
  }

  /** Stops answering for a partition this instance can no longer count on; its entry is left to lapse or to be given back. */
  private letGo(partition: number): Promise<void> {
    clearTimeout(this.lapses.get(partition));
    this.lapses.delete(partition);
    // Let go already: done once its owner has stopped answering for it.
    if (!this.held.delete(partition)) return this.releasing.get(partition) ?? Promise.resolve();
    this.renewedAt.delete(partition);
    const releasing: Promise<void> = Promise.resolve(this.owner?.released(partition))
      .catch(() => undefined)
      .finally(() => {
        if (this.releasing.get(partition) === releasing) this.releasing.delete(partition);
      });
    this.releasing.set(partition, releasing);
    return releasing;
  }

  /** Deletes a lease this instance does not answer for (any more), if its entry still names this instance. */
  private async giveBackIfOurs(partition: number): Promise<void> {
    const entry = await this.kv.get(partitionKey(partition)).catch(() => null);
    if (entry?.operation === 'PUT' && entry.string() === this.options.holder) await this.giveBack(partition, entry.revision);
  }

  /** Deletes a lease this instance does not answer for (any more), if it still has `revision`; false when it did not. */
  private async giveBack(partition: number, revision: number): Promise<boolean> {
    return this.kv.delete(partitionKey(partition), { previousSeq: revision }).then(
      () => true,
      () => false,
    );
  }

  private async leaveMembers(): Promise<void> {
    await this.kv.delete(`${memberPrefix}${this.options.holder}`).catch(() => undefined);
  }

  private async release(partition: number): Promise<void> {
    const revision = this.held.get(partition);
    if (revision === undefined) return;
    await this.letGo(partition);
    // A renewal that landed with its reply lost moved the entry to a revision this instance never
    // heard of: deleted as it is then, or it would keep every other instance out until it lapses.
    if (!(await this.giveBack(partition, revision))) await this.giveBackIfOurs(partition);
  }
}
