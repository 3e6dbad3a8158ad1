import { jest } from '@jest/globals';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { PartitionLeases, type PartitionLeasesOptions, type PartitionOwner } from './partition-leases.js';

/**
 * A key-value bucket in memory, with JetStream's revision checks, whose replies the test can hold
 * back: an update is applied at once but answered only when `updateReplies` settles (a slow
 * reply), a put is applied only when `putsLand` settles (a slow request).
 */
class SlowBucket {
  readonly entries = new Map<string, { value: string; revision: number }>();
  updateReplies?: Promise<void>;
  putsLand?: Promise<void>;
  private revision = 0;

  async create(key: string, value: string): Promise<number> {
    if (this.entries.has(key)) throw new Error('wrong last sequence');
    return this.write(key, value);
  }

  async update(key: string, value: string, revision: number): Promise<number> {
    if (this.entries.get(key)?.revision !== revision) throw new Error('wrong last sequence');
    const renewed = this.write(key, value);
    await this.updateReplies;
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

function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

const options: PartitionLeasesOptions = { bucket: 'leases', partitions: 2, ttlMs: 3_000, holder: 'a' };

/** Holds both partitions, renewing every second. */
async function holdingBoth() {
  const bucket = new SlowBucket();
  // No other instance to hear from or tell.
  const nc = { subscribe: () => ({ unsubscribe: () => undefined }), publish: () => undefined } as unknown as NatsConnection;
  const leases = new (PartitionLeases as unknown as new (nc: NatsConnection, kv: KV, options: PartitionLeasesOptions) => PartitionLeases)(nc, bucket as unknown as KV, options);
  const acquired: number[] = [];
  const released: number[] = [];
  const owner: PartitionOwner = { acquired: (partition) => void acquired.push(partition), released: async (partition) => void released.push(partition) };
  leases.start(owner);
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
