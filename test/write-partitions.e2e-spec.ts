import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { SeqlineAgent } from '@seqline/agent';
import type { Settings } from '@seqline/config';
import { WRITE_PARTITIONS, parseCursor, partitionOf, type AgentReply } from '@seqline/protocol';
import { createConversation, createTestSettings, dropTestResources, eventually, http, metric, startTestServer, WsDevice, type RunningServer } from '@seqline/testing';
import { ConversationWriter } from '../apps/server/src/ingest/conversation-writer.service.js';

/** A counter series not in `/metrics` yet has not been counted: 0. */
const counted = async (server: RunningServer, series: string): Promise<number> => (await metric(server.url, series)) ?? 0;

const owned = (server: RunningServer): number[] => server.infra.partitions.owned;

describe('write partitions across two instances', () => {
  let settings: Settings;
  let a: RunningServer | undefined;
  let b: RunningServer | undefined;
  let agent: SeqlineAgent | undefined;
  const devices: WsDevice[] = [];

  beforeAll(() => {
    settings = createTestSettings({ WRITE_PARTITION_LEASE: '1s' });
  });
  afterAll(async () => {
    await Promise.all(devices.map((device) => device.close()));
    await agent?.close();
    await a?.close();
    await b?.close();
    await dropTestResources(settings);
  });

  /** Streams one answer per conversation, in small paced bursts, and returns the texts sent. */
  async function stream(ids: string[], messageId: string, tokens: number, midway?: () => Promise<void>): Promise<string[]> {
    const answers = ids.map((id) => agent!.startMessage(id, { messageId }));
    const texts = ids.map(() => '');
    for (let t = 0; t < tokens; t++) {
      if (t === tokens / 2 && midway) await midway();
      answers.forEach((answer, i) => {
        const token = ` ${messageId}${t}`;
        texts[i] += token;
        answer.append(token);
      });
      if (t % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 2));
    }
    await Promise.all(answers.map((answer) => answer.complete()));
    return texts;
  }

  it('splits the partitions, keeps each conversation on its owner, and hands partitions over when an instance stops', async () => {
    a = await startTestServer(settings);
    b = await startTestServer(settings);
    await eventually(() => owned(a!).length === WRITE_PARTITIONS / 2 && owned(b!).length === WRITE_PARTITIONS / 2, 20_000, 'an even split');
    expect(owned(a).filter((partition) => owned(b!).includes(partition))).toEqual([]);

    // Conversations in partitions of both instances; every device follows on instance b.
    // Four in each instance's partitions, whichever those turned out to be.
    const candidates = Array.from({ length: 256 }, (_, i) => `part-${i}`);
    const ids = [...candidates.filter((id) => owned(a!).includes(partitionOf(id))).slice(0, 4), ...candidates.filter((id) => owned(b!).includes(partitionOf(id))).slice(0, 4)];
    expect(ids).toHaveLength(8);
    for (const id of ids) await createConversation(a.url, id);
    for (const id of ids) {
      const device = new WsDevice(b.url, id);
      await device.connect();
      devices.push(device);
    }
    agent = await SeqlineAgent.connect({ servers: settings.nats.url, agentId: 'writer', prefix: settings.log.prefix, stream: settings.log.stream });

    const first = await stream(ids, 'one', 200);
    for (const [i, device] of devices.entries()) {
      await device.until(() => device.messages.get('one')?.status === 'complete');
      expect(device.text('one')).toBe(first[i]);
    }
    // Every command reached its conversation's owner, so no write was ever refused as stale.
    const byRoute = async (route: string): Promise<number> => (await counted(a!, `seqline_agent_commands_total{route="${route}"}`)) + (await counted(b!, `seqline_agent_commands_total{route="${route}"}`));
    expect(await byRoute('any')).toBe(0);
    // Starts go on their own to the owner; appends ready together go to it in batches.
    expect(await byRoute('owner')).toBeGreaterThanOrEqual(ids.length);
    expect((await byRoute('owner')) + (await byRoute('batch'))).toBeGreaterThanOrEqual(ids.length * 2);
    expect((await counted(a, 'seqline_write_conflicts_total')) + (await counted(b, 'seqline_write_conflicts_total'))).toBe(0);

    // Instance a stops mid-answer: its partitions move to b, and no answer loses or repeats a token.
    const second = await stream(ids, 'two', 200, async () => {
      await a!.close();
      a = undefined;
    });
    for (const [i, device] of devices.entries()) {
      await device.until(() => device.messages.get('two')?.status === 'complete');
      expect(device.text('two')).toBe(second[i]);
      expect(device.violations).toEqual([]);
    }
    await eventually(() => owned(b!).length === WRITE_PARTITIONS, 20_000, 'b owning every partition');
  });
});

describe('write partitions with the default lease', () => {
  let settings: Settings;
  let a: RunningServer | undefined;
  let b: RunningServer | undefined;

  beforeAll(() => {
    settings = createTestSettings();
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await dropTestResources(settings);
  });

  it('are shared out when an instance joins, and all taken by the other at once when one stops, not at its next listing', async () => {
    a = await startTestServer(settings);
    await eventually(() => owned(a!).length === WRITE_PARTITIONS, 10_000, 'a owning every partition');
    b = await startTestServer(settings);
    // The second instance's first renewal after it joined (a lease period is 15 s, renewed every 5 s).
    await eventually(() => owned(a!).length === WRITE_PARTITIONS / 2 && owned(b!).length === WRITE_PARTITIONS / 2, 12_000, 'an even split');
    await a.close();
    a = undefined;
    const stopped = Date.now();
    await eventually(() => owned(b!).length === WRITE_PARTITIONS, 10_000, 'b owning every partition');
    // Told by the instance that stopped, rather than finding out at a listing up to 15 s later.
    expect(Date.now() - stopped).toBeLessThan(2_000);
  }, 40_000);
});

describe('writes made on an instance that does not own the conversation', () => {
  let settings: Settings;
  const servers: RunningServer[] = [];

  beforeAll(async () => {
    // Short leases: an instance holding its share notices the second one within a lease period.
    settings = createTestSettings({ WRITE_PARTITION_LEASE: '3s' });
    servers.push(await startTestServer(settings), await startTestServer(settings));
    await eventually(() => servers.every((server) => owned(server).length === WRITE_PARTITIONS / 2), 20_000, 'an even split');
  });
  afterAll(async () => {
    await Promise.all(servers.map((server) => server.close()));
    await dropTestResources(settings);
  });

  it('are handed to the owner, which writes them and answers for them, refusals included', async () => {
    const [owner, other] = servers as [RunningServer, RunningServer];
    // A conversation whose partition the first instance owns; every request goes to the second.
    const id = Array.from({ length: 64 }, (_, i) => `fwd-${i}`).find((candidate) => owned(owner).includes(partitionOf(candidate)))!;
    await createConversation(other.url, id);
    const forwarded = (): Promise<number> => counted(other, 'seqline_writes_forwarded_total{outcome="owner"}');
    const ownerWrites = (): Promise<number> => counted(owner, 'seqline_events_written_total{type="message.created"}');
    const [forwardedBefore, ownerBefore] = [await forwarded(), await ownerWrites()];

    const posted = await http<{ cursor: string }>(other.url, 'POST', `/v1/conversations/${id}/messages`, { messageId: 'q1', authorId: 'ada', text: 'hello' });
    expect(posted.status).toBe(202);
    expect(await forwarded()).toBe(forwardedBefore + 1);
    expect(await ownerWrites()).toBe(ownerBefore + 1);
    expect(await counted(other, 'seqline_events_written_total{type="message.created"}')).toBe(0);

    // The same post again is a duplicate; another author under the same id is refused, with the owner's code.
    const again = await http<{ cursor: string; duplicate: boolean }>(other.url, 'POST', `/v1/conversations/${id}/messages`, { messageId: 'q1', authorId: 'ada', text: 'hello' });
    expect(again.body).toEqual({ cursor: posted.body.cursor, duplicate: true });
    const clash = await http(other.url, 'POST', `/v1/conversations/${id}/messages`, { messageId: 'q1', authorId: 'bob', text: 'hello' });
    expect(clash).toEqual({ status: 409, body: { code: 'MESSAGE_EXISTS', message: expect.any(String) } });

    const device = new WsDevice(other.url, id);
    await device.connect();
    try {
      await device.until(() => device.messages.get('q1')?.text === 'hello');
      expect([...device.messages.keys()]).toEqual(['q1']);
      // The owner's refusal comes back whole, with how the message ended.
      device.send({ type: 'cancel', ref: 'late', conversationId: id, messageId: 'q1' });
      const late = () => device.frames.find((frame) => frame.type === 'error' && frame.ref === 'late');
      await device.until(() => late() !== undefined);
      expect(late()).toEqual({
        type: 'error',
        ref: 'late',
        conversationId: id,
        code: 'MESSAGE_FINISHED',
        message: 'message q1 is already complete',
        messageStatus: 'complete',
      });
    } finally {
      await device.close();
    }
  });

  it("answers a handed-over command it cannot read (another version's, in a rolling upgrade) UNAVAILABLE, to be retried, not refused for its form", async () => {
    const [owner] = servers as [RunningServer, RunningServer];
    const id = Array.from({ length: 64 }, (_, i) => `upg-${i}`).find((candidate) => owned(owner).includes(partitionOf(candidate)))!;
    await createConversation(owner.url, id);
    const nc = await connect({ servers: settings.nats.url });
    try {
      // What a newer instance might hand over: a command type this version does not know.
      const reply = (await nc.request(`${settings.log.prefix}.forward.${partitionOf(id)}.${id}`, JSON.stringify({ type: 'message.react', messageId: 'q1', emoji: '+1' }), { timeout: 5_000 })).json<AgentReply>();
      expect(reply).toEqual({ ok: false, error: { code: 'UNAVAILABLE', message: expect.stringMatching(/^the instance writing this conversation cannot read this command \(a handed-over write: .*\), likely another version during an upgrade; retry shortly$/) } });
    } finally {
      await nc.close();
    }
  });

  it('hands a batch sent to the wrong instance to the owner line by line, and the replies name the owner as writer', async () => {
    const [owner, other] = servers as [RunningServer, RunningServer];
    const ids = Array.from({ length: 64 }, (_, i) => `fwd-batch-${i}`)
      .filter((candidate) => owned(owner).includes(partitionOf(candidate)))
      .slice(0, 3);
    for (const id of ids) await createConversation(other.url, id);
    const nc = await connect({ servers: settings.nats.url });
    try {
      const request = async (subject: string, data: string) => (await nc.request(subject, data, { timeout: 5_000 })).json<unknown>();
      for (const id of ids) {
        expect(await request(`${settings.log.prefix}.agent.${id}`, JSON.stringify({ type: 'message.start', messageId: 'a1', agentId: 'raw' }))).toMatchObject({
          ok: true,
          writer: owner.infra.partitions.holder,
        });
      }
      const forwardedBefore = await counted(other, 'seqline_writes_forwarded_total{outcome="owner"}');
      // Sent to the instance that owns none of them, as an agent whose knowledge of the writer is stale would.
      const lines = ids.map((id) => `${id} ${JSON.stringify({ type: 'message.append', messageId: 'a1', part: 1, delta: `to ${id}` })}`);
      const reply = (await request(`${settings.log.prefix}.writer.batch.${other.infra.partitions.holder}`, lines.join('\n'))) as { replies: AgentReply[] };
      expect(reply.replies).toEqual(ids.map(() => ({ ok: true, cursor: expect.any(String) as string, duplicate: false, writer: owner.infra.partitions.holder })));
      expect(await counted(other, 'seqline_writes_forwarded_total{outcome="owner"}')).toBe(forwardedBefore + ids.length);
      expect(await counted(other, 'seqline_events_written_total{type="message.appended"}')).toBe(0);
      for (const id of ids) {
        const page = await http<{ items: { event: { type: string; delta?: string } }[] }>(other.url, 'GET', `/v1/conversations/${id}/events`);
        expect(page.body.items.map((item) => item.event.delta ?? item.event.type)).toEqual(['message.created', `to ${id}`]);
      }
    } finally {
      await nc.close();
    }
  });
});

describe('an instance whose cached state is behind the log', () => {
  let settings: Settings;
  const servers: RunningServer[] = [];

  beforeAll(async () => {
    settings = createTestSettings();
    servers.push(await startTestServer(settings), await startTestServer(settings));
  });
  afterAll(async () => {
    await Promise.all(servers.map((server) => server.close()));
    await dropTestResources(settings);
  });

  it('answers a repeated start with the answer as the log has it, not as its cache last saw it', async () => {
    const [a, b] = servers.map((server) => server.app.get(ConversationWriter));
    await createConversation(servers[0]!.url, 'stale-start');
    const start = { type: 'message.start', messageId: 'm', agentId: 'bot', text: '', producerId: 'p1' } as const;
    expect((await a!.write('stale-start', start)).answer).toMatchObject({ parts: 0, text: '' });
    // Written meanwhile through the other instance (a fallback write while no owner answered): this instance's cache does not see them.
    for (const [part, delta] of ['a', 'b', 'c'].entries()) await b!.write('stale-start', { type: 'message.append', messageId: 'm', part: part + 1, delta, epoch: 1 });
    // The producer, restarted, asks where the answer stands to go on from there.
    expect((await a!.write('stale-start', start)).answer).toMatchObject({ status: 'streaming', parts: 3, text: 'abc' });
  });

  /**
   * The first instance writes a start and caches the state; the second writes parts 'a', 'b' and
   * 'c' (a fallback write while no owner answered), which reach Postgres and are then dropped
   * from the log (as retention or the stream's size limit drops them). Returns the instances'
   * writers and the log sequences of the events written.
   */
  async function missedThenDropped(id: string): Promise<{ a: ConversationWriter; b: ConversationWriter; seqs: number[] }> {
    const [a, b] = servers.map((server) => server.app.get(ConversationWriter)) as [ConversationWriter, ConversationWriter];
    await createConversation(servers[0]!.url, id);
    const seqs = [seqOf(await a.write(id, start))];
    for (const [part, delta] of ['a', 'b', 'c'].entries()) seqs.push(seqOf(await b.write(id, { type: 'message.append', messageId: 'm', part: part + 1, delta, epoch: 1 })));
    await eventually(async () => (await rowText(id, 'm')) === 'abc', 10_000, 'parts in Postgres');
    return { a, b, seqs };
  }
  const start = { type: 'message.start', messageId: 'm', agentId: 'bot', text: '', producerId: 'p1' } as const;
  const seqOf = (written: { cursor: string }): number => parseCursor(written.cursor)!.seq;
  const rowText = async (id: string, messageId: string): Promise<string | undefined> =>
    (await servers[0]!.infra.prisma.message.findFirst({ where: { conversationId: id, id: messageId } }))?.text;
  const dropFromLog = async (seqs: number[]): Promise<void> => {
    const { stream } = servers[0]!.infra;
    for (const seq of seqs) await stream.jsm.streams.deleteMessage(stream.name, seq);
  };
  const holes = async (id: string): Promise<unknown[]> => servers[0]!.infra.prisma.logHole.findMany({ where: { conversationId: id } });
  const rebuilt = (reason: string): Promise<number> => counted(servers[0]!, `seqline_writer_states_rebuilt_total{reason="${reason}"}`);

  it('fences a start its producer sends again after a take-over, also on an instance that reads the answer from Postgres', async () => {
    const [a, b] = servers.map((server) => server.app.get(ConversationWriter)) as [ConversationWriter, ConversationWriter];
    await createConversation(servers[0]!.url, 'late-start');
    const startBy = (producerId: string) => ({ type: 'message.start', messageId: 'm', agentId: 'bot', text: '', producerId }) as const;
    const seqs = [seqOf(await b.write('late-start', startBy('p1')))];
    seqs.push(seqOf(await b.write('late-start', { type: 'message.append', messageId: 'm', part: 1, delta: 'a', epoch: 1 })));
    // Another agent got the prompt (the first was cut off longer than the ack wait) and took the answer over.
    const takeover = await b.write('late-start', startBy('p2'));
    expect(takeover).toMatchObject({ duplicate: false, answer: { producerId: 'p2', epoch: 2 } });
    seqs.push(seqOf(takeover));
    // The first agent's start, sent again once it is back, does not take the answer back.
    const fenced = { code: 'FENCED', message: 'message m was taken over from producer p1 (now epoch 2); it cannot take the answer back' };
    await expect(b.write('late-start', startBy('p1'))).rejects.toMatchObject(fenced);
    await eventually(async () => (await servers[0]!.infra.prisma.message.findFirst({ where: { conversationId: 'late-start', id: 'm' } }))?.formerProducers.join() === 'p1', 10_000, 'the take-over in Postgres');
    // With the events gone from the log, the other instance has only the row to go by.
    await dropFromLog(seqs);
    await expect(a.write('late-start', startBy('p1'))).rejects.toMatchObject(fenced);
    expect(await a.write('late-start', startBy('p2'))).toMatchObject({ duplicate: true, answer: { status: 'streaming', text: 'a', producerId: 'p2', epoch: 2 } });
  });

  it('keeps the last 32 producers an answer was taken over from, in the row as in memory', async () => {
    const [, b] = servers.map((server) => server.app.get(ConversationWriter)) as [ConversationWriter, ConversationWriter];
    await createConversation(servers[0]!.url, 'many-takeovers');
    const producers = Array.from({ length: 35 }, (_, i) => `p${i + 1}`);
    for (const producerId of producers) await b.write('many-takeovers', { type: 'message.start', messageId: 'm', agentId: 'bot', text: '', producerId });
    const former = producers.slice(2, 34);
    await eventually(async () => (await servers[0]!.infra.prisma.message.findFirst({ where: { conversationId: 'many-takeovers', id: 'm' } }))?.producerId === 'p35', 10_000, 'the last take-over in Postgres');
    expect((await servers[0]!.infra.prisma.message.findFirst({ where: { conversationId: 'many-takeovers', id: 'm' } }))?.formerProducers).toEqual(former);
    await expect(b.write('many-takeovers', { type: 'message.start', messageId: 'm', agentId: 'bot', text: '', producerId: 'p3' })).rejects.toMatchObject({ code: 'FENCED' });
    // Forgotten: the oldest two take it over like any new producer.
    expect(await b.write('many-takeovers', { type: 'message.start', messageId: 'm', agentId: 'bot', text: '', producerId: 'p1' })).toMatchObject({ duplicate: false, answer: { epoch: 36 } });
  });

  it('builds its state again from Postgres when the log dropped events it never saw, rather than applying the next event over the gap', async () => {
    const { a, b, seqs } = await missedThenDropped('gap');
    await b.write('gap', { type: 'message.append', messageId: 'm', part: 4, delta: 'd', epoch: 1 });
    await dropFromLog(seqs.slice(1));
    const before = await rebuilt('gap');
    expect((await a.write('gap', start)).answer).toMatchObject({ status: 'streaming', parts: 4, text: 'abcd' });
    expect(await rebuilt('gap')).toBe(before + 1);
  });

  it('takes the next part of an answer whose events the log dropped since, and the chain goes on from the last of them', async () => {
    const { a, seqs } = await missedThenDropped('emptied-append');
    await dropFromLog(seqs);
    expect(await a.write('emptied-append', { type: 'message.append', messageId: 'm', part: 4, delta: 'd', epoch: 1 })).toMatchObject({ duplicate: false });
    await eventually(async () => (await rowText('emptied-append', 'm')) === 'abcd', 10_000, 'part 4 in Postgres');
    expect(await holes('emptied-append')).toEqual([]);
  });

  it('writes a new answer after the last event the log dropped, not after the last one it saw, so Postgres records no fork', async () => {
    const { a, seqs } = await missedThenDropped('emptied-start');
    await dropFromLog(seqs);
    const before = await rebuilt('emptied');
    await a.write('emptied-start', { ...start, messageId: 'm2' });
    await eventually(async () => (await rowText('emptied-start', 'm2')) === '', 10_000, 'the new answer in Postgres');
    expect(await holes('emptied-start')).toEqual([]);
    expect(await rowText('emptied-start', 'm')).toBe('abc');
    expect(await rebuilt('emptied')).toBe(before + 1);
  });
});

describe('leases after NATS lost its data (the log and the lease buckets gone)', () => {
  let settings: Settings;
  let server: RunningServer | undefined;

  beforeAll(async () => {
    settings = createTestSettings({ WRITE_PARTITION_LEASE: '1s', PERSIST_LEASE: '1s' });
    server = await startTestServer(settings);
  });
  afterAll(async () => {
    await server?.close();
    await dropTestResources(settings);
  });

  it('creates the lease buckets again with the log, so the persister and the write partitions are taken again', async () => {
    const { url, infra } = server!;
    await eventually(() => infra.leadership.held && infra.partitions.owned.length === WRITE_PARTITIONS, 10_000, 'everything held');
    const nc = await connect({ servers: settings.nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      // As a NATS server restarted without its storage would have it.
      for (const name of [settings.log.stream, `KV_${settings.log.stream}_LEASES`, `KV_${settings.log.stream}_PARTITIONS`]) await jsm.streams.delete(name);
    } finally {
      await nc.close();
    }
    await eventually(() => !infra.leadership.held || infra.partitions.owned.length < WRITE_PARTITIONS, 15_000, 'the leases lost');
    await eventually(() => infra.leadership.held && infra.partitions.owned.length === WRITE_PARTITIONS, 20_000, 'the lease and every partition taken again');
    await createConversation(url, 'after-loss');
    const posted = await http(url, 'POST', '/v1/conversations/after-loss/messages', { messageId: 'q1', text: 'still persisted' });
    expect(posted.status).toBe(202);
    await eventually(async () => (await infra.prisma.message.findFirst({ where: { conversationId: 'after-loss', id: 'q1' } }))?.text === 'still persisted', 15_000, 'the post persisted');
  }, 60_000);
});
