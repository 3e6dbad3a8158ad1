import { ConversationRepository } from '@seqline/persistence';
import { eventually, http, TcpProxy, useSeqline } from '@seqline/testing';

/** Liveness and readiness as a load balancer or an orchestrator reads them. */
describe('health', () => {
  const seqline = useSeqline();

  it('is live, and ready with NATS, the stream, Postgres and the persister lag in the details', async () => {
    expect(await http(seqline.server.url, 'GET', '/health/live')).toEqual({ status: 200, body: { status: 'ok' } });
    const ready = await http<{ status: string; info: Record<string, { status: string; lagEvents?: number }>; epoch: string }>(seqline.server.url, 'GET', '/health/ready');
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({
      status: 'ok',
      epoch: seqline.server.infra.stream.epoch,
      info: {
        nats: { status: 'up' },
        stream: { status: 'up', name: seqline.settings.log.stream },
        postgres: { status: 'up' },
        persister: { status: 'up', lagEvents: expect.any(Number), lagSeconds: expect.any(Number), holes: 0, conversationsWithHoles: 0 },
      },
    });
    // `/health` is readiness too, for load balancers configured before the split.
    expect((await http(seqline.server.url, 'GET', '/health')).status).toBe(200);
    const metrics = await (await fetch(`${seqline.server.url}/metrics`)).text();
    expect(metrics).toMatch(/^seqline_persister_lag_events \d+$/m);
  });

  it('asks NATS, the stream and Postgres once for a burst of probes', async () => {
    const { stream } = seqline.server.infra;
    const conversations = seqline.server.app.get(ConversationRepository);
    const info = stream.jsm.streams.info.bind(stream.jsm.streams);
    const rtt = stream.nc.rtt.bind(stream.nc);
    const ping = conversations.ping.bind(conversations);
    let reads = 0;
    let roundTrips = 0;
    let pings = 0;
    stream.jsm.streams.info = (...args: Parameters<typeof info>) => {
      reads++;
      return info(...args);
    };
    stream.nc.rtt = () => {
      roundTrips++;
      return rtt();
    };
    conversations.ping = () => {
      pings++;
      return ping();
    };
    try {
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      const probes = await Promise.all(Array.from({ length: 50 }, () => http<{ status: string }>(seqline.server.url, 'GET', '/health/ready')));
      expect(probes.map((probe) => probe.status)).toEqual(Array.from({ length: 50 }, () => 200));
      // One read for the burst, or two when it spans more than the second a check is kept on a
      // busy machine; and the instance's own epoch check (every 2 s) may fall in it: never one a probe.
      expect(reads).toBeLessThanOrEqual(3);
      expect(roundTrips).toBeGreaterThanOrEqual(1);
      expect(roundTrips).toBeLessThanOrEqual(2);
      expect(pings).toBeGreaterThanOrEqual(1);
      expect(pings).toBeLessThanOrEqual(2);
    } finally {
      stream.jsm.streams.info = info;
      stream.nc.rtt = rtt;
      conversations.ping = ping;
    }
  });
});

describe('health while NATS is cut off by the network', () => {
  let proxy: TcpProxy;
  beforeAll(async () => {
    proxy = await TcpProxy.start(Number(new URL(process.env.NATS_URL ?? 'nats://127.0.0.1:4222').port || 4222));
  });
  const seqline = useSeqline(() => ({ NATS_URL: `nats://127.0.0.1:${proxy.port}` }));
  afterAll(async () => {
    proxy.thaw();
    await proxy.close();
  });

  it('reports nats down within the check time, though the connection is not closed, and up again once NATS answers', async () => {
    const { url } = seqline.server;
    proxy.freeze({ newConnections: true });
    try {
      const started = Date.now();
      const ready = await http<{ status: string; error: Record<string, { status: string }> }>(url, 'GET', '/health/ready');
      expect({ status: ready.status, nats: ready.body.error.nats?.status }).toEqual({ status: 503, nats: 'down' });
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      proxy.thaw();
    }
    await eventually(async () => (await http(url, 'GET', '/health/ready')).status === 200, 30_000, 'ready again');
  }, 60_000);
});
