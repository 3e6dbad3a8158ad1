import { jetstreamManager } from '@nats-io/jetstream';
import { ConversationLog, PERSISTER_CONSUMER } from '@seqline/streams';
import { createConversation, eventually, http, useSeqlineBehindPostgresProxy, WsDevice } from '@seqline/testing';

/** Postgres cut off by the network (every packet dropped, no connection closed), then back. */
describe('a database the network cuts off', () => {
  const { seqline, proxy } = useSeqlineBehindPostgresProxy();

  it('answers REST and snapshots UNAVAILABLE within their limits instead of holding them, and serves again once it is back', async () => {
    const { url } = seqline.server;
    await createConversation(url, 'pg-listed');
    await createConversation(url, 'pg-unread');
    proxy().freeze({ newConnections: true });
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
      proxy().thaw();
    }
    await eventually(async () => (await http(url, 'GET', '/v1/conversations')).status === 200, 30_000, 'REST served again');
    const device = new WsDevice(url, 'pg-unread');
    await device.connect();
    expect(device.frames.at(-1)).toMatchObject({ type: 'snapshot', conversationId: 'pg-unread' });
    await device.close();
  }, 90_000);

  it('stops pulling events while it cannot write them, so redeliveries do not pile up in memory, and persists every one once back', async () => {
    const { url, infra } = seqline.server;
    await createConversation(url, 'pg-persist');
    const jsm = await jetstreamManager(infra.stream.nc);
    const deliveries = async () => (await jsm.consumers.info(seqline.settings.log.stream, PERSISTER_CONSUMER)).delivered.consumer_seq;
    const log = new ConversationLog(infra.stream);
    const at = () => new Date().toISOString();
    const parts = 1_000;
    proxy().freeze({ newConnections: true });
    try {
      const before = await deliveries();
      let last = (await log.append('pg-persist', { type: 'message.created', messageId: 'a1', author: { role: 'agent', id: 'bot' }, status: 'streaming', text: '', at: at() }, await log.lastSeq('pg-persist'), 'pg-persist-created')).seq;
      for (let part = 1; part <= parts; part++) last = (await log.append('pg-persist', { type: 'message.appended', messageId: 'a1', part, delta: 'x', at: at() }, last, `pg-persist-${part}`)).seq;
      // Two of the consumer's 10 s ack waits: each would deliver every unacknowledged event again.
      await new Promise((resolve) => setTimeout(resolve, 25_000));
      expect((await deliveries()) - before).toBeLessThanOrEqual(parts + 1);
    } finally {
      proxy().thaw();
    }
    const row = () => infra.prisma.message.findFirst({ where: { conversationId: 'pg-persist', id: 'a1' } });
    await eventually(async () => (await row())?.text.length === parts, 60_000, 'every event persisted');
    expect((await row())?.text).toBe('x'.repeat(parts));
  }, 120_000);
});
