import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Lease, PartitionLeases } from '@seqline/streams';
import { createTestSettings, eventually } from '@seqline/testing';

/** The lease that keeps one persister running at a time, on the machine's real NATS. */
describe('Lease', () => {
  const settings = createTestSettings();
  const bucket = `LEASE_${settings.log.prefix.replace(/[^A-Za-z0-9]/g, '_')}`;
  let nc: NatsConnection;

  beforeAll(async () => {
    nc = await connect({ servers: settings.nats.url });
  });
  afterAll(async () => {
    for (const name of [bucket, `${bucket}_P`, `${bucket}_L`, `${bucket}_T`]) await (await new Kvm(nc).open(name)).destroy().catch(() => undefined);
    await nc.close();
  });

  it('released while it is being taken, ends up held by nobody', async () => {
    const lease = await Lease.open(nc, { bucket, key: 'persister', ttlMs: 10_000, holder: 'instance-a' });
    const changes: boolean[] = [];
    lease.onChange((held) => changes.push(held));
    // The first take is under way (a round trip to NATS) when the instance stops.
    lease.start();
    // Resolves once that take is given up too.
    await lease.release();
    expect(lease.held).toBe(false);
    expect(await Lease.holderOf(nc, bucket, 'persister')).toBeNull();
    expect(changes).toEqual([]);

    // Another instance takes it at once instead of waiting 10 s for it to lapse.
    const other = await Lease.open(nc, { bucket, key: 'persister', ttlMs: 10_000, holder: 'instance-b' });
    other.start();
    await eventually(() => other.held, 9_000, 'the other instance took the lease');
    expect(await Lease.holderOf(nc, bucket, 'persister')).toBe('instance-b');
    await other.release();
  });

  it('keeps the lease whose renewal went through unheard, instead of dropping it', async () => {
    const lease = await Lease.open(nc, { bucket: `${bucket}_L`, key: 'persister', ttlMs: 1_500, holder: 'instance-a' });
    const changes: boolean[] = [];
    lease.onChange((held) => changes.push(held));
    lease.start();
    try {
      await eventually(() => lease.held, 10_000, 'lease taken');
      // What a renewal whose reply was lost leaves: the entry written again by this holder, at a revision it never heard of.
      await (await new Kvm(nc).open(`${bucket}_L`)).put('persister', 'instance-a');
      // Four renewals (one every 375 ms).
      await new Promise((resolve) => setTimeout(resolve, 1_600));
      expect(changes).toEqual([true]);
      expect(lease.held).toBe(true);
      expect(await Lease.holderOf(nc, `${bucket}_L`, 'persister')).toBe('instance-a');
    } finally {
      await lease.release();
    }
  });

  it('holds the lease whose take went through unheard, instead of waiting for it to lapse', async () => {
    // What a take whose reply was lost leaves: the entry already names this holder when it tries again.
    const kv = await new Kvm(nc).create(`${bucket}_T`, { ttl: 60_000, history: 1 });
    await kv.put('persister', 'instance-a');
    const lease = await Lease.open(nc, { bucket: `${bucket}_T`, key: 'persister', ttlMs: 60_000, holder: 'instance-a' });
    lease.start();
    try {
      await eventually(() => lease.held, 5_000, 'lease held');
    } finally {
      await lease.release();
    }
    expect(await Lease.holderOf(nc, `${bucket}_T`, 'persister')).toBeNull();
  });

  it('keeps a write partition whose renewal went through unheard, instead of dropping it', async () => {
    const leases = await PartitionLeases.open(nc, { bucket: `${bucket}_P`, partitions: 2, ttlMs: 1_500, holder: 'instance-a' });
    const released: number[] = [];
    leases.start({ acquired: () => undefined, released: async (partition) => void released.push(partition) });
    try {
      await eventually(() => leases.owned.length === 2, 10_000, 'both partitions taken');
      // What a renewal whose reply was lost leaves: the entry written again by this holder, at a revision it never heard of.
      await (await new Kvm(nc).open(`${bucket}_P`)).put('partition.0', 'instance-a');
      // Three renewals (one every 500 ms).
      await new Promise((resolve) => setTimeout(resolve, 1_600));
      expect(released).toEqual([]);
      expect(leases.owned).toEqual([0, 1]);
    } finally {
      await leases.stop();
    }
  });
});
