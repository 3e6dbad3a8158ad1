import { connect } from '@nats-io/transport-node';
import type { AgentReply } from '@seqline/protocol';
import { createConversation, createTestSettings, dropTestResources, eventually, http, startTestServer, type RunningServer } from '@seqline/testing';
import pg from 'pg';

/** `DATABASE_URL` naming a schema (`?schema=`): every table, and every statement, is in that schema. */
describe('a database URL with ?schema=', () => {
  const base = new URL(createTestSettings().database.url);
  base.searchParams.set('schema', 'seqline_app');
  const settings = createTestSettings({ DATABASE_URL: base.toString() });
  let server: RunningServer;

  beforeAll(async () => {
    server = await startTestServer(settings);
  });
  afterAll(async () => {
    await server.close();
    await dropTestResources(settings);
  });

  it('migrates into the schema and persists prompts and answers there (raw statements included)', async () => {
    await createConversation(server.url, 'c1');
    expect((await http(server.url, 'POST', '/v1/conversations/c1/messages', { messageId: 'q1', text: 'hello' })).status).toBe(202);
    const nc = await connect({ servers: settings.nats.url });
    try {
      const send = async (command: object): Promise<AgentReply> => (await nc.request(`${settings.log.prefix}.agent.c1`, JSON.stringify(command), { timeout: 5_000 })).json<AgentReply>();
      expect(await send({ type: 'message.start', messageId: 'a1', agentId: 'bot' })).toMatchObject({ ok: true });
      expect(await send({ type: 'message.append', messageId: 'a1', part: 1, delta: 'Hi there' })).toMatchObject({ ok: true });
      expect(await send({ type: 'message.complete', messageId: 'a1' })).toMatchObject({ ok: true });
    } finally {
      await nc.close();
    }
    const client = new pg.Client({ connectionString: settings.database.url });
    await client.connect();
    try {
      const rows = async () => (await client.query<{ id: string; status: string; text: string }>('SELECT id, status, text FROM seqline_app.messages ORDER BY created_seq')).rows;
      // The answer's own row: the question's is complete from the start.
      await eventually(async () => (await rows()).some((row) => row.id === 'a1' && row.status === 'complete'), 10_000, 'the answer persisted');
      expect(await rows()).toEqual([
        { id: 'q1', status: 'complete', text: 'hello' },
        { id: 'a1', status: 'complete', text: 'Hi there' },
      ]);
      expect((await client.query("SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = 'public' AND table_name = 'messages'")).rows).toEqual([{ n: 0 }]);
    } finally {
      await client.end();
    }
    const history = await http<{ items: { id: string; text: string }[] }>(server.url, 'GET', '/v1/conversations/c1/messages');
    expect(history.body.items.map((message) => [message.id, message.text])).toEqual([
      ['q1', 'hello'],
      ['a1', 'Hi there'],
    ]);
  });
});
