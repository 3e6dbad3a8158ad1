import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Lease } from '@seqline/streams';
import { createTestSettings } from '@seqline/testing';

/** The lease that keeps one persister running at a time, on the machine's real NATS. */
describe('Lease', () => {
  const settings = createTestSettings();
  const bucket = `LEASE_${settings.log.prefix.replace(/[^A-Za-z0-9]/g, '_')}`;
  let nc: NatsConnection;

  beforeAll(async () => {
    nc = await connect({ servers: settings.nats.url });
  });
  afterAll(async () => {
    await (await new Kvm(nc).open(bucket)).destroy().catch(() => undefined);
    await nc.close();
  });

  it('released while it is being taken, ends up held by nobody', async () => {
    const lease = await Lease.open(nc, { bucket, key: 'persister', ttlMs: 10_000, holder: 'instance-a' });
    const changes: boolean[] = [];
    lease.onChange((held) => changes.push(held));
    // The first take is under way (a round trip to NATS) when the instance stops.
    lease.start();
    await lease.release();
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(lease.held).toBe(false);
    expect(await Lease.holderOf(nc, bucket, 'persister')).toBeNull();
    expect(changes).toEqual([]);

    // Another instance takes it at once instead of waiting 10 s for it to lapse.
    const other = await Lease.open(nc, { bucket, key: 'persister', ttlMs: 10_000, holder: 'instance-b' });
    other.start();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await Lease.holderOf(nc, bucket, 'persister')).toBe('instance-b');
    await other.release();
  });
});
