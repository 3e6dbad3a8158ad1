import { http, useSeqline } from '@seqline/testing';

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
});
