import type { Settings } from '@seqline/config';
import { Lease } from '@seqline/streams';
import { createConversation, createTestSettings, dropTestResources, eventually, http, ServerProcess, TcpProxy } from '@seqline/testing';
import { connect } from '@nats-io/transport-node';

const postgres = new URL(process.env.TEST_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres');

/** Stopping an instance (SIGTERM) while Postgres hangs: the stop is bounded, and what the instance held is handed over. */
describe('SIGTERM while Postgres does not answer', () => {
  let settings: Settings;
  let proxy: TcpProxy;
  let server: ServerProcess | undefined;
  beforeAll(async () => {
    proxy = await TcpProxy.start(Number(postgres.port || 5432));
    const base = createTestSettings();
    const url = new URL(base.database.url);
    url.port = String(proxy.port);
    settings = createTestSettings({ DATABASE_URL: url.toString(), SEQLINE_PREFIX: base.log.prefix });
  });
  afterAll(async () => {
    if (server?.running) await server.crash();
    proxy.thaw();
    await dropTestResources(settings);
    await proxy.close();
  });

  it('exits within a persister flush wait, not when Postgres answers, and gives up the persister lease on the way out', async () => {
    server = await ServerProcess.start(settings);
    await createConversation(server.url, 'stopping');
    const nc = await connect({ servers: settings.nats.url });
    try {
      const holder = () => Lease.holderOf(nc, `${settings.log.stream}_LEASES`, 'leader');
      // The network stops carrying every Postgres connection, new ones too; a posted message goes to
      // the log, and the persister's batch with it waits on Postgres.
      // A first message, persisted, leaves the conversation's state in the instance's memory.
      expect((await http(server.url, 'POST', '/v1/conversations/stopping/messages', { messageId: 'q1', text: 'hello', authorId: 'u' })).status).toBe(202);
      await eventually(async () => (await http<{ items: unknown[] }>(server!.url, 'GET', '/v1/conversations/stopping/messages')).body.items.length === 1, 10_000, 'the first message persisted');
      proxy.freeze({ newConnections: true });
      expect((await http(server.url, 'POST', '/v1/conversations/stopping/messages', { messageId: 'q2', text: 'again', authorId: 'u' })).status).toBe(202);
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      expect(await holder()).not.toBeNull();
      const stopping = performance.now();
      const code = await Promise.race([server.stop(), new Promise<string>((resolve) => setTimeout(() => resolve('still running'), 20_000))]);
      expect({ code, withinMs: performance.now() - stopping < 20_000 }).toEqual({ code: 0, withinMs: true });
      expect(await holder()).toBeNull();
    } finally {
      await nc.close();
    }
  }, 60_000);
});
