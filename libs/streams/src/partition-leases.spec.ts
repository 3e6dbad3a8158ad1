import { jest } from '@jest/globals';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { errors } from '@nats-io/transport-node';
import { PartitionLeases, type PartitionLeasesOptions, type PartitionOwner } from './partition-leases.js';

/**
 * A key-value bucket in memory, with JetStream's revision checks, whose replies the test can hold
 * back: an update is applied at once but answered only when `updateReplies` settles (a slow
 * reply), a put is applied only when `putsLand` settles (a slow request).
 */
class SlowBucket {
  readonly entries = new Map<string, { value: string; revision: number }>();
  updateReplies?: Promise<void>;
  /** Set: an update is applied, and then its reply is lost (it fails once this settles). */
  updatesFail?: Promise<void>;
  /** The error such an update fails with: a request timeout, as nats.js reports one. */
  failure: () => Error = () => new Error('TIMEOUT');
  putsLand?: Promise<void>;
  /** Set: a get is answered only once this settles (a slow read). */
  getsLand?: Promise<void>;
  /** How long each create takes to be answered, in (fake) milliseconds. */
  createMs = 0;
  /** Set: the next create finds its key just taken by this holder. */
  takenFirstBy?: string;
  private revision = 0;

  async create(key: string, value: string): Promise<number> {
    if (this.takenFirstBy !== undefined) {
      this.write(key, this.takenFirstBy);
      this.takenFirstBy = undefined;
    }
    if (this.entries.has(key)) throw new Error('wrong last sequence');
    const revision = this.write(key, value);
    if (this.createMs > 0) await new Promise((resolve) => setTimeout(resolve, this.createMs));
    return revision;
  }

  async update(key: string, value: string, revision: number): Promise<number> {
    if (this.entries.get(key)?.revision !== revision) throw new Error('wrong last sequence');
    const renewed = this.write(key, value);
    await this.updateReplies;
    if (this.updatesFail) {
      await this.updatesFail;
      throw this.failure();
    }
    return renewed;
  }

  async put(key: string, value: string): Promise<number> {
    await this.putsLand;
    return this.write(key, value);
  }

  async delete(key: string, options?: { previousSeq?: number }): Promise<void> {
    if (options?.previousSeq !== undefined && this.entries.get(key)?.revision !== options.previousSeq) throw new Error('wrong last sequence');
    this.entries.delete(key);
  }

  async get(key: string) {
    await this.getsLand;
    const entry = this.entries.get(key);
    return entry ? { operation: 'PUT', revision: entry.revision, string: () => entry.value } : null;
  }

  async keys(): Promise<AsyncIterable<string>> {
    const keys = [...this.entries.keys()];
    return (async function* () {
      yield* keys;
    })();
  }

  private write(key: string, value: string): number {
    this.entries.set(key, { value, revision: ++this.revision });
    return this.revision;
  }
}

/**
 * Starts instance `a` sharing `partitions` partitions through `bucket`, with no other instance to
 * hear from or tell; `released` settles when `releases` does (the owner's commands in flight).
 */
function holding(bucket: SlowBucket, partitions = 2, releases?: Promise<void>) {
  const nc = { subscribe: () => ({ unsubscribe: () => undefined }), publish: () => undefined } as unknown as NatsConnection;
  const leases = new (PartitionLeases as unknown as new (nc: NatsConnection, kv: KV, options: PartitionLeasesOptions) => PartitionLeases)(nc, bucket as unknown as KV, { ...options, partitions });
  const acquired: number[] = [];
  const released: number[] = [];
  const owner: PartitionOwner = {
    acquired: (partition) => void acquired.push(partition),
    released: async (partition) => {
      released.push(partition);
      await releases;
    },
  };
  leases.start(owner);
  return { leases, acquired, released };
}

function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

const options: PartitionLeasesOptions = { bucket: 'leases', partitions: 2, ttlMs: 3_000, holder: 'a' };

/** Holds both partitions, renewing every second; `released` settles when `releases` does (the owner's commands in flight). */
async function holdingBoth(releases?: Promise<void>) {
  const bucket = new SlowBucket();
  const { leases, acquired, released } = holding(bucket, 2, releases);
  await jest.advanceTimersByTimeAsync(0);
  expect(leases.owned).toEqual([0, 1]);
  return { bucket, leases, acquired, released };
}

/** Lets the next renewal start (one a second), then stops: `stop` gives up waiting for it after 2 s. */
async function stopDuringNextRenewal(leases: PartitionLeases): Promise<void> {
  await jest.advanceTimersByTimeAsync(1_000);
  const stopped = leases.stop();
  await jest.advanceTimersByTimeAsync(2_000);
  await stopped;
}

beforeEach(() => jest.useFakeTimers());
afterEach(() => jest.useRealTimers());

describe('PartitionLeases.stop when NATS answers slower than stop waits', () => {
  it('gives back a lease whose renewal was answered after stop had released it', async () => {
    const { bucket, leases, acquired, released } = await holdingBoth();
    const replies = gate();
    bucket.updateReplies = replies.promise;
    await stopDuringNextRenewal(leases);
    expect(released.sort()).toEqual([0, 1]);
    replies.open();
    await jest.advanceTimersByTimeAsync(0);
    expect([...bucket.entries.keys()]).toEqual([]);
    expect(leases.owned).toEqual([]);
    // Taken once each (in an order of its own), never again after the stop.
    expect([...acquired].sort()).toEqual([0, 1]);
  });

  it('deletes its member key again when the heartbeat put lands after stop deleted it', async () => {
    const { bucket, leases } = await holdingBoth();
    const puts = gate();
    bucket.putsLand = puts.promise;
    await stopDuringNextRenewal(leases);
    puts.open();
    await jest.advanceTimersByTimeAsync(0);
    expect([...bucket.entries.keys()]).toEqual([]);
  });
});

describe('PartitionLeases when renewals stop coming back', () => {
  it('lets its partitions go before their entries can lapse, so it never answers for one another instance may have taken', async () => {
    const { bucket, leases, released } = await holdingBoth();
    // From the renewal at 1 s on, no reply comes back; the entries were last written at 0 and lapse at 3 s.
    bucket.updateReplies = new Promise(() => undefined);
    await jest.advanceTimersByTimeAsync(2_600);
    expect(leases.owns(0)).toBe(true);
    expect(released).toEqual([]);
    await jest.advanceTimersByTimeAsync(200);
    expect(leases.owned).toEqual([]);
    expect(leases.owns(0)).toBe(false);
    expect([...released].sort()).toEqual([0, 1]);
  });

  it('does not count on a renewal answered after it had let go, and gives that entry back', async () => {
    const { bucket, leases, acquired, released } = await holdingBoth();
    const replies = gate();
    bucket.updateReplies = replies.promise;
    await jest.advanceTimersByTimeAsync(2_800);
    expect(leases.owned).toEqual([]);
    const revisions = [...bucket.entries].filter(([key]) => key.startsWith('partition.')).map(([, entry]) => entry.revision);
    // The renewals sent at 1 s come back at 3.8 s, past the 3.7 s they could be counted on until.
    await jest.advanceTimersByTimeAsync(1_000);
    bucket.updateReplies = undefined;
    replies.open();
    await jest.advanceTimersByTimeAsync(0);
    // Given back at the revisions the late renewals wrote, then taken afresh (new entries), each once.
    expect([...released].sort()).toEqual([0, 1]);
    expect([...acquired].sort()).toEqual([0, 0, 1, 1]);
    const now = [...bucket.entries].filter(([key]) => key.startsWith('partition.')).map(([, entry]) => entry.revision);
    expect(now.every((revision) => !revisions.includes(revision))).toBe(true);
    expect(leases.owned).toEqual([0, 1]);
    await leases.stop();
  });

  it('does not take back a partition it let go when the renewal out meanwhile fails with its write landed, but gives the entry back', async () => {
    const { bucket, leases, acquired, released } = await holdingBoth();
    const failures = gate();
    bucket.updatesFail = failures.promise;
    await jest.advanceTimersByTimeAsync(2_800);
    expect(leases.owned).toEqual([]);
    bucket.updatesFail = undefined;
    failures.open();
    await jest.advanceTimersByTimeAsync(0);
    // Held again only by being taken afresh, its owner told: never held without being answered for.
    expect([...released].sort()).toEqual([0, 1]);
    expect([...acquired].sort()).toEqual([0, 0, 1, 1]);
    expect(leases.owned).toEqual([0, 1]);
    await leases.stop();
  });

  it('gives a partition it let go back only once its owner has stopped answering for it', async () => {
    const releases = gate();
    const { bucket, leases, released } = await holdingBoth(releases.promise);
    const failures = gate();
    bucket.updatesFail = failures.promise;
    await jest.advanceTimersByTimeAsync(2_800);
    expect([...released].sort()).toEqual([0, 1]);
    bucket.updatesFail = undefined;
    failures.open();
    await jest.advanceTimersByTimeAsync(0);
    // The owner still finishes the writes it took: the entries stay, so no other instance takes them meanwhile.
    expect([...bucket.entries.keys()].filter((key) => key.startsWith('partition.')).sort()).toEqual(['partition.0', 'partition.1']);
    const revisions = [...bucket.entries].filter(([key]) => key.startsWith('partition.')).map(([, entry]) => entry.revision);
    releases.open();
    await jest.advanceTimersByTimeAsync(0);
    expect([...bucket.entries].filter(([key]) => key.startsWith('partition.')).every(([, entry]) => !revisions.includes(entry.revision))).toBe(true);
    await leases.stop();
  });
});

describe('PartitionLeases when a renewal lands with its reply lost', () => {
  it('does not keep a partition it let go while it checked the entry was still its own: its owner answers for every partition it holds', async () => {
    const { bucket, leases, acquired, released } = await holdingBoth();
    // The renewal at 1 s is written, its reply lost (a timeout): the entry moves on a revision this instance never heard of.
    const failures = gate();
    bucket.updatesFail = failures.promise;
    bucket.failure = () => new errors.TimeoutError();
    await jest.advanceTimersByTimeAsync(1_100);
    bucket.updatesFail = undefined;
    failures.open();
    // The renewal at 2 s is refused for naming the old revision; the check of the entry answers only at 2.8 s, after the lapse at 2.7 s.
    const reads = gate();
    bucket.getsLand = reads.promise;
    await jest.advanceTimersByTimeAsync(1_700);
    expect([...released].sort()).toEqual([0, 1]);
    bucket.getsLand = undefined;
    reads.open();
    await jest.advanceTimersByTimeAsync(0);
    // Whatever it holds, its owner was told it took it after it was let go.
    for (const partition of leases.owned) expect(acquired.filter((taken) => taken === partition)).toHaveLength(2);
    // And it takes them afresh at its next turn.
    await jest.advanceTimersByTimeAsync(1_000);
    expect(leases.owned).toEqual([0, 1]);
    expect([...acquired].sort()).toEqual([0, 0, 1, 1]);
    await leases.stop();
  });

  it('gives its partitions back on stop though a renewal moved their entries to a revision it never heard of', async () => {
    const { bucket, leases } = await holdingBoth();
    const failures = gate();
    bucket.updatesFail = failures.promise;
    bucket.failure = () => new errors.TimeoutError();
    await jest.advanceTimersByTimeAsync(1_100);
    bucket.updatesFail = undefined;
    failures.open();
    await jest.advanceTimersByTimeAsync(0);
    await leases.stop();
    expect([...bucket.entries.keys()].filter((key) => key.startsWith('partition.'))).toEqual([]);
  });
});

describe('PartitionLeases taking many partitions from a slow bucket', () => {
  it('keeps the first ones it took while it takes the rest: no lease lapses while the takes are under way', async () => {
    const bucket = new SlowBucket();
    // Each take answered after 500 ms: one after another, eight outlast the 2.7 s a take is counted on.
    bucket.createMs = 500;
    const { leases, released } = holding(bucket, 8);
    await jest.advanceTimersByTimeAsync(6_000);
    expect(released).toEqual([]);
    expect(leases.owned).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    await leases.stop();
  });
});

describe('PartitionLeases taking its share while another instance takes too', () => {
  it('makes up a partition another instance took first with the next free one, in the same turn', async () => {
    const bucket = new SlowBucket();
    // Another instance is a member and holds partition 0 of 4: this one's share is 2.
    bucket.entries.set('member.b', { value: '1', revision: 1 });
    bucket.entries.set('partition.0', { value: 'b', revision: 2 });
    bucket.takenFirstBy = 'b';
    const { leases } = holding(bucket, 4);
    await jest.advanceTimersByTimeAsync(0);
    expect(leases.owned).toHaveLength(2);
    await leases.stop();
  });
});
