import { jest } from '@jest/globals';
import type { KV } from '@nats-io/kv';
import { errors, type NatsConnection } from '@nats-io/transport-node';
import { Lease, type LeaseOptions } from './lease.js';

/** A bucket that grants the lease, then never answers a renewal (NATS away: each request waits out its timeout). */
function unansweringBucket() {
  let created = false;
  return {
    create: async () => {
      if (created) throw new Error('wrong last sequence');
      created = true;
      return 1;
    },
    update: () => new Promise<number>(() => undefined),
    get: () => new Promise(() => undefined),
    delete: async () => undefined,
  };
}

describe('Lease', () => {
  afterEach(() => jest.useRealTimers());

  it('lets go before its entry can lapse when renewals do not come back, so it never holds on after another has taken it', async () => {
    jest.useFakeTimers();
    const options: LeaseOptions = { bucket: 'b', key: 'persister', ttlMs: 5_000, holder: 'me' };
    const lease = new (Lease as unknown as new (nc: NatsConnection, kv: KV, options: LeaseOptions) => Lease)({} as NatsConnection, unansweringBucket() as unknown as KV, options);
    const changes: boolean[] = [];
    lease.onChange((held) => changes.push(held));
    lease.start();
    await jest.advanceTimersByTimeAsync(0);
    expect(lease.held).toBe(true);
    // The first renewal (at 1.25 s) hangs; the entry lapses 5 s after it was written.
    await jest.advanceTimersByTimeAsync(4_400);
    expect(lease.held).toBe(true);
    await jest.advanceTimersByTimeAsync(200);
    expect(lease.held).toBe(false);
    expect(changes).toEqual([true, false]);
  });

  it('does not take the lease back on a renewal that answers after it let go, and deletes its entry on release all the same', async () => {
    jest.useFakeTimers();
    const deleted: (number | undefined)[] = [];
    let created = false;
    const bucket = {
      create: async () => {
        if (created) throw new Error('wrong last sequence');
        created = true;
        return 1;
      },
      // Answered 5 s late, having gone through.
      update: () => new Promise<number>((resolve) => setTimeout(() => resolve(2), 5_000)),
      get: () => new Promise(() => undefined),
      delete: async (_key: string, options?: { previousSeq?: number }) => void deleted.push(options?.previousSeq),
    };
    const options: LeaseOptions = { bucket: 'b', key: 'persister', ttlMs: 5_000, holder: 'me' };
    const lease = new (Lease as unknown as new (nc: NatsConnection, kv: KV, options: LeaseOptions) => Lease)({} as NatsConnection, bucket as unknown as KV, options);
    const changes: boolean[] = [];
    lease.onChange((held) => changes.push(held));
    lease.start();
    await jest.advanceTimersByTimeAsync(6_300);
    expect(changes).toEqual([true, false]);
    // A take under way (its read never answered) is waited for 2 s at most.
    const releasing = lease.release();
    await jest.advanceTimersByTimeAsync(2_000);
    await releasing;
    expect(deleted).toEqual([2]);
  });

  it('deletes its entry on release though a renewal moved it to a revision it never heard of (written, its reply lost)', async () => {
    jest.useFakeTimers();
    const entry = { revision: 0, holder: '' };
    const bucket = {
      create: async () => {
        if (entry.revision > 0) throw new Error('wrong last sequence');
        Object.assign(entry, { revision: 1, holder: 'me' });
        return 1;
      },
      // Written, and its reply lost: a timeout, as nats.js reports one.
      update: async () => {
        entry.revision++;
        throw new errors.TimeoutError();
      },
      get: async () => (entry.revision > 0 ? { operation: 'PUT', revision: entry.revision, string: () => entry.holder } : null),
      delete: async (_key: string, options?: { previousSeq?: number }) => {
        if (options?.previousSeq !== undefined && options.previousSeq !== entry.revision) throw new Error('wrong last sequence');
        entry.revision = 0;
      },
    };
    const options: LeaseOptions = { bucket: 'b', key: 'persister', ttlMs: 5_000, holder: 'me' };
    const lease = new (Lease as unknown as new (nc: NatsConnection, kv: KV, options: LeaseOptions) => Lease)({} as NatsConnection, bucket as unknown as KV, options);
    lease.start();
    // Taken at 0; the renewal at 1.25 s lands at revision 2 and times out, which the lease shrugs off (an election).
    await jest.advanceTimersByTimeAsync(1_300);
    expect(lease.held).toBe(true);
    await lease.release();
    expect(entry.revision).toBe(0);
  });
});
