import { createConversation, eventually, http, TcpProxy, useSeqline, WsDevice } from '@seqline/testing';

const postgres = new URL(process.env.TEST_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres');

/** Postgres cut off by the network (every packet dropped, no connection closed), then back. */
describe('a database the network cuts off', () => {
  let proxy: TcpProxy;
  beforeAll(async () => {
    proxy = await TcpProxy.start(Number(postgres.port || 5432));
  });
  const seqline = useSeqline(() => {
    const url = new URL(postgres);
    url.port = String(proxy.port);
    url.pathname = `/seqline_test_pg${Math.random().toString(36).slice(2, 8)}`;
    return { DATABASE_URL: url.toString() };
  });
  // After the suite's server and database are gone, which go through the proxy too.
  afterAll(async () => {
    proxy.thaw();
    await proxy.close();
  });

  it('answers REST and snapshots UNAVAILABLE within their limits instead of holding them, and serves again once it is back', async () => {
    const { url } = seqline.server;
    await createConversation(url, 'pg-listed');
    await createConversation(url, 'pg-unread');
    proxy.freeze({ newConnections: true });
    try {
      const started = Date.now();
      const listed = await http<{ code: string; message: string }>(url, 'GET', '/v1/conversations');
      expect({ status: listed.status, code: listed.body.code }).toEqual({ status: 503, code: 'UNAVAILABLE' });
      expect(Date.now() - started).toBeLessThan(17_000);

      // A device with no cursor needs history, and no instance keeps this conversation's.
      const device = new WsDevice(url, 'pg-unread');
      const subscribing = Date.now();
      await device.connect();
      expect(device.frames.at(-1)).toMatchObject({ type: 'error', code: 'UNAVAILABLE' });
      expect(Date.now() - subscribing).toBeLessThan(12_000);
      await device.close();
    } finally {
      proxy.thaw();
    }
    await eventually(async () => (await http(url, 'GET', '/v1/conversations')).status === 200, 30_000, 'REST served again');
    const device = new WsDevice(url, 'pg-unread');
    await device.connect();
    expect(device.frames.at(-1)).toMatchObject({ type: 'snapshot', conversationId: 'pg-unread' });
    await device.close();
  }, 90_000);
});
