import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { SeqlineClient, type Subscription } from '@seqline/client';
import type { Settings } from '@seqline/config';
import { createConversation, createTestSettings, dropTestResources, eventually, http, ServerProcess } from '@seqline/testing';
import pg from 'pg';
import WebSocket from 'ws';
import { runCli } from '../../apps/cli/src/seqline-cli.js';

const CONVERSATIONS = ['lr-0', 'lr-1', 'lr-2'];
const POSTS_PER_CONVERSATION = 40;

/** Posts until the service takes it (the log is briefly gone); returns the epoch of the cursor it answered. */
async function postAccepted(url: string, conversationId: string, messageId: string, text: string): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    const { status, body } = await http<{ cursor: string }>(url, 'POST', `/v1/conversations/${conversationId}/messages`, { messageId, text, authorId: 'u' });
    if (status === 202) return body.cursor.split('-')[0]!;
    if (attempt > 200) throw new Error(`post ${messageId} never accepted: ${status} ${JSON.stringify(body)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('the log stream deleted and recreated under running instances', () => {
  let settings: Settings;
  const servers: ServerProcess[] = [];
  const clients: SeqlineClient[] = [];

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.close()));
    await Promise.all(servers.map((server) => server.crash()));
    if (settings) await dropTestResources(settings);
  });

  it('devices move to the new epoch by snapshot, Postgres converges to the new log with the old rows archived, and doctor reports it', async () => {
    settings = createTestSettings({ PERSIST_LEASE: '2s', WRITE_PARTITION_LEASE: '2s' });
    servers.push(await ServerProcess.start(settings), await ServerProcess.start(settings));
    for (const id of [...CONVERSATIONS, 'lr-idle']) await createConversation(servers[0]!.url, id);
    await postAccepted(servers[0]!.url, 'lr-idle', 'idle-1', 'never touched again');

    const subscriptions: { conversationId: string; subscription: Subscription }[] = [];
    for (const conversationId of CONVERSATIONS) {
      for (const server of servers) {
        const client = new SeqlineClient({ url: server.url, WebSocket });
        clients.push(client);
        subscriptions.push({ conversationId, subscription: client.subscribe(conversationId) });
      }
    }
    await eventually(() => clients.every((client) => client.state === 'live'), 15_000, 'devices live');

    // Every conversation gets a post every 50 ms, alternating instances, while the stream is deleted underneath.
    const accepted = new Map<string, { text: string; epoch: string }[]>(CONVERSATIONS.map((id) => [id, []]));
    const oldEpoch = (await http<{ epoch: string }>(servers[0]!.url, 'GET', '/health/ready')).body.epoch;
    const writers = CONVERSATIONS.map(async (conversationId) => {
      for (let n = 0; n < POSTS_PER_CONVERSATION; n++) {
        const text = `${conversationId} post ${n}`;
        const epoch = await postAccepted(servers[n % 2]!.url, conversationId, `p${n}`, text);
        accepted.get(conversationId)!.push({ text, epoch });
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    });
    // The stream goes once Postgres holds a few posts of each conversation; what it holds then is
    // archived, however far behind the persister is.
    const heldBefore = new Map<string, number>();
    const before = new pg.Client({ connectionString: settings.database.url });
    await before.connect();
    try {
      await eventually(async () => {
        const { rows } = await before.query('SELECT conversation_id, count(*)::int AS n FROM messages WHERE conversation_id = ANY($1) GROUP BY conversation_id', [CONVERSATIONS]);
        for (const row of rows as { conversation_id: string; n: number }[]) heldBefore.set(row.conversation_id, row.n);
        return CONVERSATIONS.every((id) => (heldBefore.get(id) ?? 0) >= 3);
      }, 15_000, 'a few posts of each conversation in Postgres');
    } finally {
      await before.end();
    }
    const nc = await connect({ servers: settings.nats.url });
    try {
      await (await jetstreamManager(nc)).streams.delete(settings.log.stream);
    } finally {
      await nc.close();
    }
    await Promise.all(writers);

    const newEpoch = (await http<{ epoch: string }>(servers[1]!.url, 'GET', '/health/ready')).body.epoch;
    expect(newEpoch).not.toBe(oldEpoch);
    expect((await http<{ epoch: string }>(servers[0]!.url, 'GET', '/health/ready')).body.epoch).toBe(newEpoch);
    for (const posts of accepted.values()) {
      // Each post landed in one log or the other; the old log ends where the new one starts.
      expect(posts.map((post) => post.epoch)).toEqual([...posts.filter((post) => post.epoch === oldEpoch), ...posts.filter((post) => post.epoch === newEpoch)].map((post) => post.epoch));
      expect(posts.filter((post) => post.epoch === newEpoch).length).toBeGreaterThan(0);
    }
    const expected = (conversationId: string): string[] => accepted.get(conversationId)!.filter((post) => post.epoch === newEpoch).map((post) => post.text);

    // Every device ends with exactly the new log's messages, at a cursor of the new epoch.
    for (const { conversationId, subscription } of subscriptions) {
      await eventually(() => subscription.messages.map((message) => message.text).join('|') === expected(conversationId).join('|'), 20_000, `device of ${conversationId} on the new log`);
      expect(subscription.cursor?.startsWith(`${newEpoch}-`)).toBe(true);
    }

    // Postgres converges: the new log's rows, and the old ones archived.
    const db = new pg.Client({ connectionString: settings.database.url });
    await db.connect();
    try {
      for (const conversationId of CONVERSATIONS) {
        await eventually(
          async () => (await db.query('SELECT text FROM messages WHERE conversation_id = $1 ORDER BY created_seq', [conversationId])).rows.map((row: { text: string }) => row.text).join('|') === expected(conversationId).join('|'),
          20_000,
          `rows of ${conversationId}`,
        );
        const archived = (await db.query('SELECT text, log_epoch FROM archived_messages WHERE conversation_id = $1 ORDER BY created_seq', [conversationId])).rows as { text: string; log_epoch: string }[];
        const old = accepted.get(conversationId)!.filter((post) => post.epoch === oldEpoch).map((post) => post.text);
        // What Postgres had when the stream was deleted: the old log's events in order, except the
        // last ones not yet persisted then, which went with the stream.
        expect(archived.map((row) => row.text)).toEqual(old.slice(0, archived.length));
        expect(archived.length).toBeGreaterThanOrEqual(heldBefore.get(conversationId)!);
        expect(archived.every((row) => row.log_epoch === oldEpoch)).toBe(true);
      }
    } finally {
      await db.end();
    }

    const lines: string[] = [];
    expect(await runCli(['doctor'], (text) => lines.push(text), settings)).toBe(1);
    expect(lines.join('\n')).toMatch(/^FAIL {2}epoch +1 conversations were persisted under another log epoch \(the log was recreated, or restored from a backup\)/m);
    expect(await runCli(['repair', '--all'], () => undefined, settings)).toBe(0);
    lines.length = 0;
    expect(await runCli(['doctor'], (text) => lines.push(text), settings)).toBe(0);
    expect(lines.join('\n')).toMatch(new RegExp(`^OK {4}epoch +every watermark counts in epoch ${newEpoch}$`, 'm'));
  });
});
