import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { SeqlineClient } from '@seqline/client';
import type { Settings } from '@seqline/config';
import type { ConversationRecord } from '@seqline/persistence';
import { epochOf, foldBlocks, parseCursor, type LogEvent, type Message, type MessageBlock, type Page } from '@seqline/protocol';
import { ConversationLog, LogStream, PERSISTER_CONSUMER } from '@seqline/streams';
import { createConversation, createTestSettings, dropTestResources, eventually, http, metric, SseStream, startTestServer, useSeqline, WsDevice } from '@seqline/testing';
import pg from 'pg';
import WebSocket from 'ws';
import { ConversationRepair } from '../apps/cli/src/conversation-repair.js';
import { runCli } from '../apps/cli/src/seqline-cli.js';
import { LogPersister } from '../apps/server/src/persist/log-persister.service.js';
import type { Infrastructure } from '../apps/server/src/core/infrastructure.js';

async function cli(settings: Settings, ...args: string[]): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const code = await runCli(args, (text) => lines.push(text), settings);
  return { code, out: lines.join('\n') };
}

async function post(url: string, conversationId: string, messageId: string, text: string): Promise<void> {
  const { status, body } = await http(url, 'POST', `/v1/conversations/${conversationId}/messages`, { messageId, text, authorId: 'u' });
  if (status !== 202) throw new Error(`post to ${conversationId} failed: ${status} ${JSON.stringify(body)}`);
}

/** Deletes the log stream under the running service, which creates it again (a new epoch). */
async function deleteLogStream(settings: Settings): Promise<void> {
  const nc = await connect({ servers: settings.nats.url });
  try {
    await (await jetstreamManager(nc)).streams.delete(settings.log.stream);
  } finally {
    await nc.close();
  }
}

async function history(url: string, conversationId: string): Promise<Message[]> {
  return (await http<Page<Message>>(url, 'GET', `/v1/conversations/${conversationId}/messages?limit=100`)).body.items;
}

const texts = (messages: { text: string }[]): string[] => messages.map((message) => message.text);
/** The texts of a conversation's rows as Postgres holds them, in log order (REST would add the log's recent tail). */
const persisted = async (infra: Infrastructure, conversationId: string): Promise<string[]> =>
  texts(await infra.prisma.message.findMany({ where: { conversationId }, orderBy: { createdSeq: 'asc' } }));
/** A user message as a raw log event, for writing the log directly. */
const created = (messageId: string, text: string): LogEvent => ({ type: 'message.created', messageId, author: { role: 'user', id: 'u' }, status: 'complete', text, at: new Date().toISOString() });
/** The stream sequence a cursor names. */
const seqOf = (cursor: string): number => parseCursor(cursor)!.seq;

describe('log and Postgres under bad events and lost rows', () => {
  const seqline = useSeqline();

  it('skips an undecodable event with a recorded hole, keeps an unknown event type in the chain, and persists every other conversation on', async () => {
    const { url } = seqline.server;
    const prefix = seqline.settings.log.prefix;
    await createConversation(url, 'p-bad');
    await createConversation(url, 'p-good');
    await post(url, 'p-bad', 'u1', 'first');
    await post(url, 'p-good', 'g1', 'one');
    await eventually(async () => (await history(url, 'p-bad')).length === 1 && (await history(url, 'p-good')).length === 1);
    const away = new WsDevice(url, 'p-bad');
    await away.connect();
    await away.close();

    const js = jetstream(seqline.server.infra.stream.nc);
    const poison = await js.publish(`${prefix}.log.p-bad`, 'not json {');
    // An event type from a newer version, correctly chained after the poison.
    await js.publish(`${prefix}.log.p-bad`, JSON.stringify({ prev: poison.seq, event: { type: 'message.reacted', messageId: 'u1', emoji: '+1', at: new Date().toISOString() } }));
    await post(url, 'p-bad', 'u2', 'second');
    await post(url, 'p-good', 'g2', 'two');

    await eventually(async () => (await history(url, 'p-bad')).length === 2 && (await history(url, 'p-good')).length === 2, 15_000, 'both conversations persisted');
    expect(texts(await history(url, 'p-bad'))).toEqual(['first', 'second']);
    expect(texts(await history(url, 'p-good'))).toEqual(['one', 'two']);
    const holes = await seqline.server.infra.prisma.logHole.findMany();
    expect(holes.map((hole) => ({ conversationId: hole.conversationId, untilSeq: Number(hole.untilSeq), reason: hole.reason }))).toEqual([
      { conversationId: 'p-bad', untilSeq: poison.seq, reason: 'undecodable' },
    ]);
    const metrics = (await (await fetch(`${url}/metrics`)).text()).split('\n');
    expect(metrics).toContain('seqline_poison_events_total 1');
    expect(metrics).toContain('seqline_log_holes_total{reason="undecodable"} 1');

    const ready = await http<{ info: { persister: Record<string, unknown> } }>(url, 'GET', '/health/ready');
    expect(ready).toMatchObject({ status: 200, body: { info: { persister: { status: 'up', holes: 1, conversationsWithHoles: 1 } } } });

    // A hole is history no command fills: reported, and not a failure that would stay for good.
    const doctor = await cli(seqline.settings, 'doctor');
    expect(doctor.code).toBe(0);
    expect(doctor.out).toMatch(new RegExp(`^WARN  holes +1 recorded in 1 conversation, newest first \\(no repair fills them\\):\\n    p-bad: events \\d+-${poison.seq} \\(epoch \\w+\\) undecodable event at ${poison.seq}$`, 'm'));
    expect(doctor.out).toMatch(/^OK {4}postgres /m);
    expect(doctor.out).toMatch(/^OK {4}replication +1 replica on nats-server \d+\.\d+\.\d+$/m);
    expect(doctor.out).toMatch(/^OK {4}lease +persister lease held by /m);
    // With NATS out of reach it still reports what it can (Postgres, its holes), and fails.
    const noNats = await cli({ ...seqline.settings, nats: { ...seqline.settings.nats, url: 'nats://127.0.0.1:1' } }, 'doctor');
    expect(noNats.code).toBe(1);
    expect(noNats.out).toMatch(/^FAIL {2}nats +Cannot reach NATS at nats:\/\/127\.0\.0\.1:1 /m);
    expect(noNats.out).toMatch(/^OK {4}postgres +answering$/m);
    expect(noNats.out).toMatch(/^WARN {2}holes +1 recorded in 1 conversation/m);

    // Devices away since before the bad event are not caught up across it (a passing UNAVAILABLE
    // would have them retry forever): one whose cursor the bad event follows gets a snapshot, which
    // goes past it; one caught up from further back is told its cursor expired, mid-catch-up.
    await away.connect();
    expect(away.frames.at(-1)).toMatchObject({ type: 'snapshot', conversationId: 'p-bad' });
    expect(texts([...away.messages.values()])).toEqual(['first', 'second']);
    await away.close();
    const fromStart = new WsDevice(url, 'p-bad');
    const origin = `${away.cursor!.slice(0, away.cursor!.lastIndexOf('-'))}-0`;
    fromStart.cursor = origin;
    await fromStart.connect();
    await fromStart.until(() => fromStart.frames.some((frame) => frame.type === 'error'));
    expect(fromStart.frames.at(-1)).toMatchObject({ type: 'error', code: 'CURSOR_EXPIRED', conversationId: 'p-bad' });
    expect(fromStart.frames.filter((frame) => frame.type !== 'event').map((frame) => frame.type)).toEqual(['subscribed', 'error']);
    expect(fromStart.violations).toEqual([]);
    await fromStart.close();

    // An SSE reader cannot drop its Last-Event-ID: instead of an error that would bring its
    // EventSource back to the same failure, its stream goes on from a snapshot.
    const sse = await SseStream.open(`${url}/v1/conversations/p-bad/stream`, { 'last-event-id': origin });
    await sse.until(() => sse.frames.some((frame) => frame.event === 'snapshot' || frame.event === 'error'), 15_000);
    expect(sse.frames.map((frame) => frame.event ?? 'event').filter((type) => type !== 'event')).toEqual(['snapshot']);
    const snapshot = JSON.parse(sse.frames.find((frame) => frame.event === 'snapshot')!.data) as { cursor: string; messages: { text: string }[] };
    expect(snapshot.messages.map((message) => message.text)).toEqual(['first', 'second']);
    expect(sse.frames.at(-1)!.id).toBe(snapshot.cursor);
    await post(url, 'p-bad', 'u3', 'third');
    await sse.until(() => sse.frames.some((frame) => frame.data.includes('third')), 15_000);
    expect(sse.endedAt).toBeUndefined();
    sse.close();
  });

  it('rebuilds every conversation and message row exactly with `repair --all` after the database lost them', async () => {
    const { url } = seqline.server;
    await createConversation(url, 'r-1', 'First');
    await createConversation(url, 'r-2');
    await post(url, 'r-1', 'q1', 'what is a log?');
    await post(url, 'r-2', 'q2', 'hello');
    const agent = await seqline.agent('repair-bot');
    const answer = agent.startMessage('r-1', { messageId: 'a1' });
    for (let i = 0; i < 50; i++) answer.append(`tok${i} `);
    await answer.complete();
    const failing = agent.startMessage('r-2', { messageId: 'a2' });
    failing.append('partial ');
    await failing.fail('model overloaded');
    await eventually(async () => (await history(url, 'r-1')).at(-1)?.status === 'complete' && (await history(url, 'r-2')).at(-1)?.status === 'failed');

    const before = new Map<string, { conversation: ConversationRecord; messages: Message[] }>();
    for (const id of ['r-1', 'r-2', 'p-good']) {
      before.set(id, { conversation: (await http<ConversationRecord>(url, 'GET', `/v1/conversations/${id}`)).body, messages: await history(url, id) });
    }
    await seqline.server.infra.prisma.$executeRaw`TRUNCATE conversations CASCADE`;
    expect((await http(url, 'GET', '/v1/conversations/r-1')).status).toBe(404);

    const repaired = await cli(seqline.settings, 'repair', '--all');
    expect(repaired.code).toBe(0);
    expect(repaired.out).toContain('repaired r-1: 2 messages');
    expect(repaired.out).toMatch(/^4 conversations repaired$/m);
    for (const [id, { conversation, messages }] of before) {
      const now = (await http<ConversationRecord>(url, 'GET', `/v1/conversations/${id}`)).body;
      expect({ id: now.id, title: now.title, createdAt: now.createdAt }).toEqual({ id: conversation.id, title: conversation.title, createdAt: conversation.createdAt });
      expect(await history(url, id)).toEqual(messages);
    }
    expect(texts(before.get('r-1')!.messages)).toEqual(['what is a log?', Array.from({ length: 50 }, (_, i) => `tok${i} `).join('')]);
    // The persister goes on from the rebuilt watermark.
    await post(url, 'r-1', 'q3', 'thanks');
    await eventually(async () => (await history(url, 'r-1')).length === 3);
    expect(texts(await history(url, 'r-2'))).toEqual(['hello', 'partial ']);

    const listed = await cli(seqline.settings, 'conversations');
    expect(listed.out.split('\n').map((line) => line.split('\t')[0])).toEqual(['p-bad', 'p-good', 'r-1', 'r-2']);
    // A mistyped id is not a conversation to create.
    expect(await cli(seqline.settings, 'repair', 'r-typo')).toEqual({ code: 1, out: 'seqline: conversation r-typo does not exist: neither Postgres nor the log holds it' });
    expect(await seqline.server.infra.prisma.conversation.findUnique({ where: { id: 'r-typo' } })).toBeNull();
    // A NATS wildcard is no id: it would read every conversation's events into one.
    expect(await cli(seqline.settings, 'repair', '*')).toEqual({ code: 2, out: 'seqline: "*" is not a conversation id (1-128 characters of A-Z a-z 0-9 _ -)' });
    // `--all` is repair's alone: history of "--all" is a usage error, not a conversation looked for.
    expect((await cli(seqline.settings, 'history', '--all')).code).toBe(2);
    expect(await seqline.server.infra.prisma.conversation.findUnique({ where: { id: '*' } })).toBeNull();
    const unknown = await cli(seqline.settings, 'history', 'r-typo', '--json');
    expect({ code: unknown.code, out: JSON.parse(unknown.out) as unknown }).toEqual({ code: 1, out: { code: 'UNKNOWN_CONVERSATION', message: 'conversation r-typo does not exist' } });
    const shown = await cli(seqline.settings, 'history', 'r-2');
    expect(shown.out).toBe('[user/u complete] hello\n[agent/repair-bot failed: model overloaded] partial ');
  });

  it('answers a failure under --json as { code, message }, and lists conversations from Postgres while NATS is out of reach', async () => {
    await createConversation(seqline.server.url, 'cli-listed');
    const noNats = { ...seqline.settings, nats: { ...seqline.settings.nats, url: 'nats://127.0.0.1:1' } };
    const listed = await cli(noNats, 'conversations', '--json');
    expect(listed.code).toBe(0);
    expect((JSON.parse(listed.out) as { id: string }[]).map((conversation) => conversation.id)).toContain('cli-listed');
    const failed = await cli(noNats, 'history', 'cli-listed', '--json');
    expect(failed.code).toBe(1);
    expect(JSON.parse(failed.out)).toEqual({ code: 'NATS_UNREACHABLE', message: expect.stringMatching(/^Cannot reach NATS at nats:\/\/127\.0\.0\.1:1 /) });
  });

  it("moves a conversation's updatedAt when its events are persisted, so conversations can be ordered by activity", async () => {
    const { url } = seqline.server;
    await createConversation(url, 'active');
    const before = (await http<{ createdAt: string; updatedAt: string }>(url, 'GET', '/v1/conversations/active')).body;
    expect(before.updatedAt).toBe(before.createdAt);
    await new Promise((resolve) => setTimeout(resolve, 20));
    await post(url, 'active', 'q1', 'hello');
    await eventually(async () => (await history(url, 'active')).length === 1);
    const after = (await http<{ createdAt: string; updatedAt: string }>(url, 'GET', '/v1/conversations/active')).body;
    expect(after.createdAt).toBe(before.createdAt);
    expect(Date.parse(after.updatedAt)).toBeGreaterThan(Date.parse(before.createdAt));
  });

  it('records when it repaired in UTC, as every other write, whatever time zone the database sessions have', async () => {
    const { url } = seqline.server;
    await createConversation(url, 'tz-1');
    await post(url, 'tz-1', 'q1', 'hello');
    await eventually(async () => (await history(url, 'tz-1')).length === 1);
    const database = decodeURIComponent(new URL(seqline.settings.database.url).pathname.slice(1));
    await seqline.server.infra.prisma.$executeRawUnsafe(`ALTER DATABASE "${database}" SET timezone = 'Asia/Tokyo'`);
    try {
      expect((await cli(seqline.settings, 'repair', 'tz-1')).code).toBe(0);
    } finally {
      await seqline.server.infra.prisma.$executeRawUnsafe(`ALTER DATABASE "${database}" RESET timezone`);
    }
    const repaired = await seqline.server.infra.prisma.conversation.findUnique({ where: { id: 'tz-1' } });
    expect(Math.abs(repaired!.updatedAt.getTime() - Date.now())).toBeLessThan(60_000);
  });

  it('`doctor` fails when Postgres holds a conversation past the log\'s last event (the log lost events it had acknowledged)', async () => {
    const { url } = seqline.server;
    await createConversation(url, 'ahead-1');
    await post(url, 'ahead-1', 'q1', 'hello');
    await eventually(async () => (await history(url, 'ahead-1')).length === 1);
    const { stream } = seqline.server.infra;
    const last = (await stream.jsm.streams.info(stream.name)).state.last_seq;
    const before = (await seqline.server.infra.prisma.conversation.findUnique({ where: { id: 'ahead-1' } }))!.appliedSeq;
    await seqline.server.infra.prisma.conversation.update({ where: { id: 'ahead-1' }, data: { appliedSeq: BigInt(last + 1_000) } });
    try {
      const doctor = await cli(seqline.settings, 'doctor');
      expect(doctor.code).toBe(1);
      // Nor can a repair rebuild it from a log that ends before it: it says why rather than "try again".
      await expect(cli(seqline.settings, 'repair', 'ahead-1')).rejects.toThrow(
        new RegExp(`^Postgres holds ahead-1 up to event ${last + 1_000}, past the log's last event \\(\\d+\\): the log lost events it had acknowledged; recreate the log, then run the repair \\(see Replicas in docs/production\\.md\\)$`),
      );
      expect(doctor.out).toMatch(/^FAIL {2}epoch +1 conversations are persisted past the log's last event \(\d+\), e\.g\. ahead-1: the log lost events it had acknowledged, and writes to them are refused until the log is recreated \(see Replicas in docs\/production\.md\)$/m);
      // `repair --all` says so for that conversation and goes on with every other one, then exits 1.
      const all = await cli(seqline.settings, 'repair', '--all', '--json');
      expect(all.code).toBe(1);
      const entries = JSON.parse(all.out) as { conversationId: string; error?: { code: string; message: string }; messages?: number }[];
      // Not "UNAVAILABLE": running it again changes nothing until the log is recreated.
      expect(entries.filter((entry) => entry.error)).toEqual([{ conversationId: 'ahead-1', error: { code: 'LOG_LOST_EVENTS', message: expect.stringMatching(/^Postgres holds ahead-1 up to event \d+, past the log's last event/) } }]);
      const repaired = entries.filter((entry) => !entry.error).map((entry) => entry.conversationId);
      expect(repaired.length).toBeGreaterThan(1);
      expect(repaired).toEqual(expect.arrayContaining(['r-1', 'r-2']));
      expect(entries.map((entry) => entry.conversationId)).toEqual([...entries.map((entry) => entry.conversationId)].sort());
      const text = await cli(seqline.settings, 'repair', '--all');
      expect(text.out).toMatch(/^seqline: could not repair ahead-1: Postgres holds ahead-1 up to event \d+/m);
      expect(text.out).toMatch(/^\d+ conversations repaired, 1 not \(see above\)$/m);
    } finally {
      await seqline.server.infra.prisma.conversation.update({ where: { id: 'ahead-1' }, data: { appliedSeq: before } });
    }
    expect((await cli(seqline.settings, 'doctor')).out).toMatch(/^OK {4}epoch +every watermark counts in epoch \w+$/m);
  });

  it('reads from the log the events Postgres lost behind its watermark, which no consumer delivers again, and goes on exactly', async () => {
    const { url } = seqline.server;
    const { prisma } = seqline.server.infra;
    await createConversation(url, 'lost-1');
    const agent = await seqline.agent('refill-bot');
    const first = agent.startMessage('lost-1', { messageId: 'a1' });
    for (let i = 0; i < 30; i++) first.append(`t${i} `);
    await first.complete();
    const rows = () => prisma.message.findMany({ where: { conversationId: 'lost-1' }, orderBy: { createdSeq: 'asc' } });
    await eventually(async () => (await rows()).at(-1)?.status === 'complete');

    // Postgres loses the answer and its watermark goes back to the start; the persister's consumer
    // has acknowledged those events and will not deliver them again.
    await prisma.$executeRaw`DELETE FROM messages WHERE conversation_id = 'lost-1'`;
    await prisma.$executeRaw`UPDATE conversations SET applied_seq = 0 WHERE id = 'lost-1'`;
    const second = agent.startMessage('lost-1', { messageId: 'a2' });
    second.append('and more');
    await second.complete();

    await eventually(async () => (await rows()).filter((row) => row.status === 'complete').length === 2, 20_000, 'both answers back in Postgres');
    expect((await rows()).map((row) => ({ id: row.id, text: row.text, status: row.status }))).toEqual([
      { id: 'a1', text: Array.from({ length: 30 }, (_, i) => `t${i} `).join(''), status: 'complete' },
      { id: 'a2', text: 'and more', status: 'complete' },
    ]);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/^seqline_persist_refilled_events_total [1-9]\d*$/m);
  });

  /**
   * An answer of ten tokens `a1`, persisted, then Postgres put back to before its end (the answer
   * streaming, both watermarks at the event before); `row` reads the answer, `events` are its log events.
   */
  async function answerThatLostItsEnd(conversationId: string, agentId: string) {
    const { url } = seqline.server;
    const { prisma } = seqline.server.infra;
    await createConversation(url, conversationId);
    const agent = await seqline.agent(agentId);
    const answer = agent.startMessage(conversationId, { messageId: 'a1' });
    for (let i = 0; i < 10; i++) answer.append(`t${i} `);
    await answer.complete();
    const row = () => prisma.message.findFirst({ where: { conversationId, id: 'a1' } });
    await eventually(async () => (await row())?.status === 'complete', 10_000, 'the answer persisted');
    const events = (await http<{ items: { cursor: string; prev: string }[] }>(url, 'GET', `/v1/conversations/${conversationId}/events?limit=100`)).body.items;
    const beforeEnd = seqOf(events.at(-1)!.prev);
    await prisma.$executeRaw`UPDATE messages SET status = 'streaming', applied_seq = ${beforeEnd} WHERE conversation_id = ${conversationId}`;
    await prisma.$executeRaw`UPDATE conversations SET applied_seq = ${beforeEnd} WHERE id = ${conversationId}`;
    return { row, events };
  }

  it("reads a conversation's last events from the log when no delivery brings them, so an answer does not stay streaming in Postgres", async () => {
    const { prisma } = seqline.server.infra;
    // Postgres lacks the answer's end, and the consumer, which counted it as done, never delivers
    // it again; nothing follows it in the conversation to show the gap.
    const { row, events } = await answerThatLostItsEnd('lost-end', 'tail-bot');

    await eventually(async () => (await row())?.status === 'complete', 15_000, 'the end of the answer back in Postgres');
    expect(await row()).toMatchObject({ text: Array.from({ length: 10 }, (_, i) => `t${i} `).join(''), status: 'complete' });
    expect(Number((await prisma.conversation.findUnique({ where: { id: 'lost-end' } }))!.appliedSeq)).toBe(seqOf(events.at(-1)!.cursor));
    expect(await prisma.logHole.findMany({ where: { conversationId: 'lost-end' } })).toEqual([]);
  });

  it("reads what Postgres lost from the log when the conversation's last event cannot be decoded, instead of waiting for a delivery that never comes", async () => {
    const { prisma } = seqline.server.infra;
    // Postgres lacks the answer's end, which the consumer will not deliver again; the event after
    // it, the conversation's last, cannot be decoded, so nothing names the end as its predecessor.
    const { row } = await answerThatLostItsEnd('lost-poison', 'poison-bot');
    const poison = await jetstream(seqline.server.infra.stream.nc).publish(`${seqline.settings.log.prefix}.log.lost-poison`, 'not json {');

    await eventually(async () => (await row())?.status === 'complete', 15_000, 'the end of the answer back in Postgres');
    expect(await row()).toMatchObject({ text: Array.from({ length: 10 }, (_, i) => `t${i} `).join(''), status: 'complete' });
    await eventually(async () => Number((await prisma.conversation.findUniqueOrThrow({ where: { id: 'lost-poison' } })).appliedSeq) === poison.seq, 5_000, 'the watermark past the undecodable event');
    const holes = await prisma.logHole.findMany({ where: { conversationId: 'lost-poison' } });
    expect(holes.map((hole) => ({ untilSeq: Number(hole.untilSeq), reason: hole.reason }))).toEqual([{ untilSeq: poison.seq, reason: 'undecodable' }]);
  });

  it('fills a lost gap longer than one read from the log (10,000 events), a read at a time, and goes on exactly', async () => {
    const { url, infra } = seqline.server;
    const { prisma } = infra;
    await createConversation(url, 'lost-long');
    const log = new ConversationLog(infra.stream);
    const at = () => new Date().toISOString();
    // 10,050 events of one answer straight into the log, one part each.
    const parts = 10_050;
    let last = (await log.append('lost-long', { type: 'message.created', messageId: 'long', author: { role: 'agent', id: 'bot' }, status: 'streaming', text: '', at: at() }, 0, 'lost-long-created')).seq;
    for (let part = 1; part <= parts; part++) {
      last = (await log.append('lost-long', { type: 'message.appended', messageId: 'long', part, delta: `${part % 10}`, at: at() }, last, `lost-long-${part}`)).seq;
    }
    last = (await log.append('lost-long', { type: 'message.completed', messageId: 'long', at: at() }, last, 'lost-long-completed')).seq;
    const watermark = async () => Number((await prisma.conversation.findUniqueOrThrow({ where: { id: 'lost-long' } })).appliedSeq);
    await eventually(async () => (await watermark()) === last, 30_000, 'the answer persisted');

    // Postgres loses it all; the consumer acknowledged every one of those events long ago.
    await prisma.$executeRaw`DELETE FROM messages WHERE conversation_id = 'lost-long'`;
    await prisma.$executeRaw`UPDATE conversations SET applied_seq = 0 WHERE id = 'lost-long'`;
    await post(url, 'lost-long', 'after', 'and then a question');

    const rows = () => prisma.message.findMany({ where: { conversationId: 'lost-long' }, orderBy: { createdSeq: 'asc' } });
    await eventually(async () => (await rows()).length === 2, 40_000, 'the gap filled and the question persisted');
    const expected = Array.from({ length: parts }, (_, i) => `${(i + 1) % 10}`).join('');
    expect((await rows()).map((row) => ({ id: row.id, text: row.text, status: row.status }))).toEqual([
      { id: 'long', text: expected, status: 'complete' },
      { id: 'after', text: 'and then a question', status: 'complete' },
    ]);
    expect(await prisma.logHole.count({ where: { conversationId: 'lost-long' } })).toBe(0);
  }, 120_000);

  it('keeps a long answer in one row, its text compressed with lz4', async () => {
    const { url } = seqline.server;
    const { prisma } = seqline.server.infra;
    await createConversation(url, 'long-1');
    const agent = await seqline.agent('long-bot');
    const answer = agent.startMessage('long-1', { messageId: 'a1' });
    let text = '';
    for (let i = 0; i < 500; i++) {
      const token = `token ${i} of a long answer. `;
      text += token;
      answer.append(token);
    }
    await answer.complete();
    const stored = () => prisma.$queryRaw<{ text: string; status: string; method: string | null }[]>`
      SELECT text, status, pg_column_compression(text) AS method FROM messages WHERE conversation_id = 'long-1'`;
    await eventually(async () => (await stored())[0]?.status === 'complete');
    expect(await stored()).toEqual([{ text, status: 'complete', method: 'lz4' }]);
  });

  it('keeps one copy of a value an answer sets again and again (a data part, a tool output), not one per flush', async () => {
    const { url } = seqline.server;
    const { prisma } = seqline.server.infra;
    await createConversation(url, 'whole-1');
    const agent = await seqline.agent('status-bot');
    const answer = agent.startMessage('whole-1', { messageId: 'a1' });
    const stored = () => prisma.$queryRaw<{ parts: number; fragments: number; bytes: number }[]>`
      SELECT parts, jsonb_array_length(blocks) AS fragments, octet_length(blocks::text) AS bytes FROM messages WHERE conversation_id = 'whole-1'`;
    const value = (i: number) => JSON.stringify({ step: i, note: 'x'.repeat(1_000) });
    answer.append('Working');
    answer.append(' on it', { type: 'text', id: 't1' });
    // 30 updates of one status part and of one tool's output, each persisted before the next.
    for (let i = 1; i <= 30; i++) {
      answer.append(value(i), { type: 'data', id: 'status', name: 'status' });
      answer.append(value(i), { type: 'tool', id: 'call-1', toolName: 'search', field: 'output' });
      await eventually(async () => (await stored())[0]?.parts === 2 + 2 * i, 10_000, `update ${i} persisted`);
    }
    await answer.complete();
    await eventually(async () => (await history(url, 'whole-1')).find((message) => message.id === 'a1')?.status === 'complete');
    const [row] = await stored();
    // The text block and the two set-whole ones, each once (it was 62 fragments, 60 of them a whole value).
    expect(row!.fragments).toBeLessThanOrEqual(4);
    expect(row!.bytes).toBeLessThan(4 * 1_100);
    const message = (await history(url, 'whole-1')).find((candidate) => candidate.id === 'a1')!;
    expect(message.text).toBe('Working on it');
    expect(message.blocks).toEqual([
      { type: 'text', id: 't1', text: ' on it' },
      { type: 'data', id: 'status', name: 'status', data: value(30) },
      { type: 'tool', id: 'call-1', toolName: 'search', input: '', output: value(30) },
    ]);
  }, 180_000);

  it('keeps blocks a newer version stored that this one cannot fold, appending to them instead of writing its fold over them', async () => {
    const { url } = seqline.server;
    const { prisma } = seqline.server.infra;
    await createConversation(url, 'newer-1');
    const agent = await seqline.agent('status-bot');
    const answer = agent.startMessage('newer-1', { messageId: 'a1' });
    const parts = async () => (await prisma.message.findUnique({ where: { conversationId_id: { conversationId: 'newer-1', id: 'a1' } } }))?.parts;
    answer.append('one', { type: 'data', id: 'status', name: 'status' });
    await eventually(async () => (await parts()) === 1, 10_000, 'the first value persisted');
    // As a newer version persisting this answer would have: a block type, and a field, this one does not know.
    await prisma.$executeRaw`UPDATE messages SET blocks = blocks || '[{"type":"chart","id":"c1","spec":"bars"},{"type":"data","id":"status","name":"status","data":"one","ttl":5}]'::jsonb WHERE conversation_id = 'newer-1'`;
    answer.append('two', { type: 'data', id: 'status', name: 'status' });
    await eventually(async () => (await parts()) === 2, 10_000, 'the second value persisted');
    const [row] = await prisma.$queryRaw<{ blocks: unknown[] }[]>`SELECT blocks FROM messages WHERE conversation_id = 'newer-1'`;
    expect(row!.blocks).toContainEqual({ type: 'chart', id: 'c1', spec: 'bars' });
    expect(row!.blocks).toContainEqual({ type: 'data', id: 'status', name: 'status', data: 'one', ttl: 5 });
    // This version reads what it knows of it, passing over the rest.
    const message = (await history(url, 'newer-1')).find((candidate) => candidate.id === 'a1')!;
    expect(message.blocks).toEqual([{ type: 'data', id: 'status', name: 'status', data: 'two' }]);
    await answer.complete();
  });
});

describe('a log stream deleted and recreated under a running service', () => {
  const seqline = useSeqline();

  it('moves devices to the new epoch by snapshot, archives the old rows, and `doctor` reports it until `repair --all`', async () => {
    const { url } = seqline.server;
    await createConversation(url, 'e-1');
    await createConversation(url, 'e-2');
    await post(url, 'e-1', 'm1', 'before');
    await post(url, 'e-2', 'm2', 'untouched');
    // An answer with typed parts, written in two appends so its row holds fragments.
    const agent = await seqline.agent('archiver');
    const answer = agent.startMessage('e-1', { messageId: 'a1' });
    answer.append('hmm', { type: 'reasoning', id: 'r1' });
    await eventually(async () => (await history(url, 'e-1')).some((message) => message.id === 'a1' && message.text === ''), 10_000, 'the first part persisted');
    answer.append('yes', { type: 'text', id: 't1' });
    await answer.complete();
    await eventually(async () => (await history(url, 'e-1')).length === 2 && (await history(url, 'e-1'))[1]!.status === 'complete' && (await history(url, 'e-2')).length === 1);
    const client = new SeqlineClient({ url, WebSocket });
    const subscription = client.subscribe('e-1');
    await eventually(() => client.state === 'live' && subscription.messages.length === 2);
    const oldEpoch = seqline.server.infra.stream.epoch;

    await deleteLogStream(seqline.settings);
    await eventually(() => seqline.server.infra.stream.epoch !== oldEpoch, 10_000, 'the service follows the new log');
    const newEpoch = seqline.server.infra.stream.epoch;
    await post(url, 'e-1', 'm3', 'after');

    await eventually(() => texts(subscription.messages).join('|') === 'after', 15_000, 'the device shows the new log');
    expect(subscription.messages[0]!.cursor.startsWith(`${newEpoch}-`)).toBe(true);
    await eventually(async () => texts(await history(url, 'e-1')).join('|') === 'after', 15_000, 'Postgres follows the new log');
    // An instance that has not yet noticed the new log persists a batch of the old one: it must not
    // archive (and so empty) a conversation that already counts in the new epoch.
    expect(await seqline.server.infra.messages.archiveOtherEpochs(['e-1'], oldEpoch)).toEqual([]);
    expect(texts(await history(url, 'e-1')).join('|')).toBe('after');
    expect((await seqline.server.infra.messages.watermarks(['e-1'])).get('e-1')?.epoch).toBe(newEpoch);
    const archived = await seqline.server.infra.prisma.archivedMessage.findMany({ orderBy: [{ conversationId: 'asc' }, { createdSeq: 'asc' }] });
    expect(archived.map((row) => [row.conversationId, row.logEpoch, row.text, foldBlocks(row.blocks as MessageBlock[])])).toEqual([
      ['e-1', oldEpoch, 'before', []],
      ['e-1', oldEpoch, 'yes', [{ type: 'reasoning', id: 'r1', text: 'hmm' }, { type: 'text', id: 't1', text: 'yes' }]],
    ]);

    // The CLI shows what Postgres keeps of the older log too, under a line naming its epoch: the
    // archived rows, and the rows of a conversation the new log has not reached yet.
    expect((await cli(seqline.settings, 'history', 'e-1')).out).toBe(
      [`-- log epoch ${oldEpoch} (older log) --`, '[user/u complete] before', '[agent/archiver complete] yes', `-- log epoch ${newEpoch} (current) --`, '[user/u complete] after'].join('\n'),
    );
    expect((await cli(seqline.settings, 'history', 'e-2')).out).toBe([`-- log epoch ${oldEpoch} (older log) --`, '[user/u complete] untouched'].join('\n'));

    const doctor = await cli(seqline.settings, 'doctor');
    expect(doctor.code).toBe(1);
    expect(doctor.out).toMatch(/^FAIL {2}epoch +1 conversations were persisted under another log epoch \(the log was recreated, or restored from a backup\)/m);
    expect(doctor.out).toMatch(new RegExp(`^OK    stream +${seqline.settings.log.stream}: epoch ${newEpoch}`, 'm'));
    expect((await cli(seqline.settings, 'repair', '--all')).code).toBe(0);
    const after = await cli(seqline.settings, 'doctor');
    expect(after.out).toMatch(new RegExp(`^OK    epoch +every watermark counts in epoch ${newEpoch}$`, 'm'));
    expect(after.code).toBe(0);
    expect(await history(url, 'e-2')).toEqual([]);
    expect((await seqline.server.infra.prisma.archivedMessage.findMany({ where: { conversationId: 'e-2' } })).map((row) => row.text)).toEqual(['untouched']);
    const archivedE2 = JSON.parse((await cli(seqline.settings, 'history', 'e-2', '--json')).out) as { text: string; cursor: string }[];
    expect(archivedE2.map(({ text, cursor }) => [text, cursor.startsWith(`${oldEpoch}-`)])).toEqual([['untouched', true]]);
    await client.close();
  });
});

describe('a log older than the epoch Postgres counts in (a stream restored from a backup keeps its creation time)', () => {
  const seqline = useSeqline();

  it('rebuilds the conversation from the log, archiving the rows, in the persister and in `repair`, instead of waiting for a newer log', async () => {
    const { url, infra } = seqline.server;
    const { prisma } = infra;
    const later = epochOf(new Date(Date.now() + 86_400_000));
    for (const id of ['b-persist', 'b-repair']) {
      await createConversation(url, id);
      await post(url, id, 'm1', 'one');
    }
    await eventually(async () => (await history(url, 'b-persist')).length === 1 && (await history(url, 'b-repair')).length === 1);
    // Postgres counts both in an epoch newer than the log's.
    await prisma.$executeRaw`UPDATE conversations SET log_epoch = ${later} WHERE id IN ('b-persist', 'b-repair')`;

    await post(url, 'b-persist', 'm2', 'two');
    await eventually(async () => texts(await history(url, 'b-persist')).join('|') === 'one|two', 15_000, 'the persister rebuilt the conversation from the log');
    const repaired = await cli(seqline.settings, 'repair', 'b-repair');
    expect(repaired.code).toBe(0);
    expect(texts(await history(url, 'b-repair'))).toEqual(['one']);

    for (const id of ['b-persist', 'b-repair']) expect((await infra.messages.watermarks([id])).get(id)?.epoch).toBe(infra.stream.epoch);
    const archived = await prisma.archivedMessage.findMany({ orderBy: { conversationId: 'asc' } });
    expect(archived.map((row) => [row.conversationId, row.logEpoch, row.text])).toEqual([
      ['b-persist', later, 'one'],
      ['b-repair', later, 'one'],
    ]);
  });
});

describe('an SSE stream open while the log is recreated', () => {
  const seqline = useSeqline();

  it('goes on in-stream from a snapshot of the new log, then gets the live events of the new log', async () => {
    const { url } = seqline.server;
    await createConversation(url, 'sse-e');
    await post(url, 'sse-e', 'm1', 'before');
    await eventually(async () => (await history(url, 'sse-e')).length === 1, 10_000, 'the message persisted');
    const sse = await SseStream.open(`${url}/v1/conversations/sse-e/stream`);
    await sse.until(() => sse.frames.length === 1, 15_000);
    const oldEpoch = seqline.server.infra.stream.epoch;

    await deleteLogStream(seqline.settings);
    await eventually(() => seqline.server.infra.stream.epoch !== oldEpoch, 10_000, 'the service follows the new log');
    const newEpoch = seqline.server.infra.stream.epoch;
    // The snapshot of the new log comes first: it holds nothing yet (the old rows count in the old log).
    // A wait that runs out is not the failure: the assertions below show what arrived instead.
    await sse.until(() => sse.frames.length >= 2, 15_000).catch(() => undefined);
    const { body: written } = await http<{ cursor: string }>(url, 'POST', '/v1/conversations/sse-e/messages', { messageId: 'm2', text: 'after', authorId: 'u' });
    await sse.until(() => sse.frames.length >= 3, 15_000).catch(() => undefined);

    const origin = `${newEpoch}-0`;
    const [before, ...after] = sse.frames.map((frame) => ({ event: frame.event, id: frame.id, data: JSON.parse(frame.data) as unknown }));
    expect(before).toEqual({ event: 'snapshot', id: expect.stringMatching(new RegExp(`^${oldEpoch}-\\d+$`)), data: expect.objectContaining({ cursor: before!.id }) });
    expect(texts((before!.data as { messages: Message[] }).messages)).toEqual(['before']);
    expect(written.cursor.startsWith(`${newEpoch}-`)).toBe(true);
    expect(after).toEqual([
      { event: 'snapshot', id: origin, data: { conversationId: 'sse-e', cursor: origin, messages: [] } },
      {
        event: undefined,
        id: written.cursor,
        data: { conversationId: 'sse-e', cursor: written.cursor, prev: origin, event: expect.objectContaining({ type: 'message.created', messageId: 'm2', text: 'after' }) },
      },
    ]);
    expect(sse.endedAt).toBeUndefined();
    sse.close();
  });
});

describe('events that expire from the log before Postgres gets them', () => {
  it('records a hole for that conversation only, and persists every other conversation exactly', async () => {
    const settings = createTestSettings({ LOG_RETENTION: '3s', PERSIST_LAG_DEGRADED: '1s', LOG_DUPLICATE_WINDOW: '1s' });
    let server = await startTestServer(settings);
    const nc = await connect({ servers: settings.nats.url });
    try {
      await createConversation(server.url, 'h-lost');
      await createConversation(server.url, 'h-kept');
      await post(server.url, 'h-lost', 'm1', 'kept in Postgres');
      await eventually(async () => (await history(server.url, 'h-lost')).length === 1);
      // The service is down (as its Postgres would be) while events are written and expire.
      await server.close();
      const log = new ConversationLog(await LogStream.open(nc, settings.log));
      let last = await log.lastSeq('h-lost');
      const firstLost = (await log.append('h-lost', created('m2', 'lost'), last, 'h-lost-m2')).seq;
      last = (await log.append('h-lost', created('m3', 'lost too'), firstLost, 'h-lost-m3')).seq;
      await eventually(async () => (await log.lastSeq('h-lost')) === 0, 10_000, 'retention removed the events');
      // The subject is empty now, so JetStream expects 0 while the chain goes on from `last`.
      await log.append('h-lost', created('m4', 'after the hole'), last, 'h-lost-m4', 0);
      const k1 = await log.append('h-kept', created('k1', 'one'), 0, 'h-kept-k1');
      await log.append('h-kept', created('k2', 'two'), k1.seq, 'h-kept-k2');

      server = await startTestServer(settings);
      await eventually(async () => (await history(server.url, 'h-kept')).length === 2 && (await history(server.url, 'h-lost')).length === 2, 15_000, 'persisted');
      expect(texts(await history(server.url, 'h-kept'))).toEqual(['one', 'two']);
      expect(texts(await history(server.url, 'h-lost'))).toEqual(['kept in Postgres', 'after the hole']);
      const holes = await server.infra.prisma.logHole.findMany();
      expect(holes.map((hole) => [hole.conversationId, Number(hole.afterSeq) < firstLost, Number(hole.untilSeq), hole.reason])).toEqual([['h-lost', true, last, 'retention']]);
      const doctor = await cli(settings, 'doctor');
      expect(doctor.code).toBe(0);
      expect(doctor.out).toMatch(/^WARN {2}holes +1 recorded in 1 conversation, newest first /m);
      expect(doctor.out).toMatch(new RegExp(`^    h-lost: events \\d+-${last} \\(epoch \\w+\\) expired before they were persisted$`, 'm'));
    } finally {
      await nc.close();
      await server.close();
      await dropTestResources(settings);
    }
  });
});

describe('a forked log', () => {
  const seqline = useSeqline();

  it('records a forked event (a second one after the same predecessor) as a hole and persists the events after it', async () => {
    const { url } = seqline.server;
    const prefix = seqline.settings.log.prefix;
    await createConversation(url, 'f-fork');
    await post(url, 'f-fork', 'f1', 'one');
    await post(url, 'f-fork', 'f2', 'two');
    await eventually(async () => (await history(url, 'f-fork')).length === 2);
    const events = (await http<{ items: { cursor: string; prev: string }[] }>(url, 'GET', '/v1/conversations/f-fork/events?limit=10')).body.items;
    // A second event after `one`, as two writers racing on an old replicated NATS could store it.
    const js = jetstream(seqline.server.infra.stream.nc);
    const fork = await js.publish(`${prefix}.log.f-fork`, JSON.stringify({ prev: seqOf(events[0]!.cursor), event: created('f-twin', 'twin') }));
    // The writer goes on from the log's last event, the twin.
    await post(url, 'f-fork', 'f3', 'three');

    await eventually(async () => (await history(url, 'f-fork')).length === 3, 15_000, 'the events after the fork persisted');
    expect(texts(await history(url, 'f-fork'))).toEqual(['one', 'two', 'three']);
    const holes = await seqline.server.infra.prisma.logHole.findMany({ where: { conversationId: 'f-fork' } });
    expect(holes.map((hole) => [Number(hole.untilSeq), hole.reason])).toEqual([[fork.seq, 'fork']]);
    const doctor = await cli(seqline.settings, 'doctor');
    expect(doctor.out).toMatch(new RegExp(`^    f-fork: events \\d+-${fork.seq} \\(epoch \\w+\\) event at ${fork.seq} forks the conversation \\(a second event after the same one\\)$`, 'm'));

    // `repair` follows the same chain: the twin stays out and its hole is recorded once, even
    // after the database lost it.
    const forkHoles = async () => (await seqline.server.infra.prisma.logHole.findMany({ where: { conversationId: 'f-fork' } })).map((hole) => [Number(hole.untilSeq), hole.reason]);
    const repaired = await cli(seqline.settings, 'repair', 'f-fork');
    expect(repaired.out).toMatch(new RegExp(`^repaired f-fork: 3 messages up to \\w+-\\d+ \\(log whole\\); events forking the conversation skipped: ${fork.seq}$`, 'm'));
    expect(texts(await history(url, 'f-fork'))).toEqual(['one', 'two', 'three']);
    expect(await forkHoles()).toEqual([[fork.seq, 'fork']]);
    await seqline.server.infra.prisma.$executeRaw`DELETE FROM log_holes WHERE conversation_id = 'f-fork'`;
    await cli(seqline.settings, 'repair', 'f-fork');
    expect(texts(await history(url, 'f-fork'))).toEqual(['one', 'two', 'three']);
    expect(await forkHoles()).toEqual([[fork.seq, 'fork']]);
  });

  it('steps over a fork inside a gap it reads from the log, as everywhere else, instead of waiting for ever', async () => {
    const { url, infra } = seqline.server;
    await createConversation(url, 'f-gap');
    await post(url, 'f-gap', 'g1', 'one');
    await post(url, 'f-gap', 'g2', 'two');
    await eventually(async () => (await history(url, 'f-gap')).length === 2);
    const events = (await http<{ items: { cursor: string }[] }>(url, 'GET', '/v1/conversations/f-gap/events?limit=10')).body.items;
    const fork = await jetstream(infra.stream.nc).publish(`${seqline.settings.log.prefix}.log.f-gap`, JSON.stringify({ prev: seqOf(events[0]!.cursor), event: created('g-twin', 'twin') }));
    await post(url, 'f-gap', 'g3', 'three');
    await eventually(async () => (await history(url, 'f-gap')).length === 3, 15_000, 'persisted past the fork');

    // Postgres loses all of it, its holes included; no consumer delivers those events again.
    await infra.prisma.$executeRaw`DELETE FROM messages WHERE conversation_id = 'f-gap'`;
    await infra.prisma.$executeRaw`DELETE FROM log_holes WHERE conversation_id = 'f-gap'`;
    await infra.prisma.$executeRaw`UPDATE conversations SET applied_seq = 0 WHERE id = 'f-gap'`;
    await post(url, 'f-gap', 'g4', 'four');

    await eventually(async () => (await history(url, 'f-gap')).length === 4, 20_000, 'the gap filled from the log');
    expect(texts(await history(url, 'f-gap'))).toEqual(['one', 'two', 'three', 'four']);
    const holes = await infra.prisma.logHole.findMany({ where: { conversationId: 'f-gap' } });
    expect(holes.map((hole) => [Number(hole.untilSeq), hole.reason])).toEqual([[fork.seq, 'fork']]);
  });
});

describe('log records Postgres cannot store', () => {
  const seqline = useSeqline();

  it('steps over an event whose text holds NUL, and one whose time does not exist, as undecodable holes: when consumed, in a gap read from the log, and in `repair`', async () => {
    const { url, infra } = seqline.server;
    await createConversation(url, 'n-bad');
    await createConversation(url, 'n-good');
    await post(url, 'n-bad', 'b1', 'first');
    await eventually(async () => (await history(url, 'n-bad')).length === 1);
    const [last] = (await http<{ items: { cursor: string }[] }>(url, 'GET', '/v1/conversations/n-bad/events?limit=10')).body.items;
    // Records of the right shape, as a raw writer or a bug could write them, holding what Postgres
    // refuses: a NUL in a text, and a day that does not exist.
    const js = jetstream(infra.stream.nc);
    const subject = `${seqline.settings.log.prefix}.log.n-bad`;
    const nul = await js.publish(subject, JSON.stringify({ prev: seqOf(last!.cursor), event: created('b2', 'a\u0000b') }));
    const badTime = await js.publish(subject, JSON.stringify({ prev: nul.seq, event: { ...created('b3', 'three'), at: '2026-02-30T10:00:00.000Z' } }));
    await post(url, 'n-bad', 'b4', 'after');
    await post(url, 'n-good', 'g1', 'unaffected');

    await eventually(async () => (await history(url, 'n-bad')).length === 2 && (await history(url, 'n-good')).length === 1, 15_000, 'both conversations persisted');
    expect(texts(await history(url, 'n-bad'))).toEqual(['first', 'after']);
    // The log's own pages hand such records on as written, also to a reader whose page ended right before one.
    type Page = { items: { cursor: string; event: { messageId: string; text?: string } }[]; next: string | null };
    const all = await http<Page>(url, 'GET', '/v1/conversations/n-bad/events?limit=10');
    const first = await http<Page>(url, 'GET', '/v1/conversations/n-bad/events?limit=1');
    const rest = await http<Page>(url, 'GET', `/v1/conversations/n-bad/events?limit=10&after=${first.body.next}`);
    expect(rest.status).toBe(200);
    expect([...first.body.items, ...rest.body.items]).toEqual(all.body.items);
    expect(all.body.items.map((item) => [item.event.messageId, item.event.text])).toEqual([
      ['b1', 'first'],
      ['b2', 'a\u0000b'],
      ['b3', 'three'],
      ['b4', 'after'],
    ]);
    expect(texts(await history(url, 'n-good'))).toEqual(['unaffected']);
    const holes = async () => (await infra.prisma.logHole.findMany({ where: { conversationId: 'n-bad' }, orderBy: { untilSeq: 'asc' } })).map((hole) => [Number(hole.untilSeq), hole.reason]);
    expect(await holes()).toEqual([
      [nul.seq, 'undecodable'],
      [badTime.seq, 'undecodable'],
    ]);

    // Postgres loses all of it, its holes included; the events come back only by a read from the log.
    await infra.prisma.$executeRaw`DELETE FROM messages WHERE conversation_id = 'n-bad'`;
    await infra.prisma.$executeRaw`DELETE FROM log_holes WHERE conversation_id = 'n-bad'`;
    await infra.prisma.$executeRaw`UPDATE conversations SET applied_seq = 0 WHERE id = 'n-bad'`;
    await post(url, 'n-bad', 'b5', 'again');
    await eventually(async () => (await history(url, 'n-bad')).length === 3, 20_000, 'the gap filled from the log');
    expect(texts(await history(url, 'n-bad'))).toEqual(['first', 'after', 'again']);
    expect(await holes()).toEqual([
      [nul.seq, 'undecodable'],
      [badTime.seq, 'undecodable'],
    ]);

    const repaired = await cli(seqline.settings, 'repair', 'n-bad');
    expect(repaired.out).toMatch(new RegExp(`^repaired n-bad: 3 messages up to \\w+-\\d+ \\(log whole\\); undecodable events skipped: ${nul.seq}, ${badTime.seq}$`, 'm'));
    expect(repaired.code).toBe(0);
    expect(texts(await history(url, 'n-bad'))).toEqual(['first', 'after', 'again']);
    expect(await holes()).toEqual([
      [nul.seq, 'undecodable'],
      [badTime.seq, 'undecodable'],
    ]);
    // Repair cannot fill them, so doctor names them, newest first, and still passes.
    const doctor = await cli(seqline.settings, 'doctor');
    expect(doctor.code).toBe(0);
    expect(doctor.out).toMatch(new RegExp(`^WARN  holes +\\d+ recorded in \\d+ conversations?, newest first \\(no repair fills them\\):\\n    n-bad: events \\d+-${badTime.seq} \\(epoch \\w+\\) undecodable event at ${badTime.seq}\\n    n-bad: events \\d+-${nul.seq} \\(epoch \\w+\\) undecodable event at ${nul.seq}$`, 'm'));
  });

  it('steps over an event of a newer type whose message id or text Postgres cannot take, where it stopped persisting for every conversation', async () => {
    const { url, infra } = seqline.server;
    await createConversation(url, 'u-bad');
    await createConversation(url, 'u-good');
    await post(url, 'u-bad', 'b1', 'first');
    await eventually(async () => (await history(url, 'u-bad')).length === 1);
    const [last] = (await http<{ items: { cursor: string }[] }>(url, 'GET', '/v1/conversations/u-bad/events?limit=10')).body.items;
    const js = jetstream(infra.stream.nc);
    const subject = `${seqline.settings.log.prefix}.log.u-bad`;
    const at = new Date().toISOString();
    const nulId = await js.publish(subject, JSON.stringify({ prev: seqOf(last!.cursor), event: { type: 'message.reacted', messageId: 'a\u0000b', at } }));
    const nulText = await js.publish(subject, JSON.stringify({ prev: nulId.seq, event: { type: 'message.reacted', messageId: 'b1', emoji: '\u0000', at } }));
    await post(url, 'u-bad', 'b2', 'after');
    await post(url, 'u-good', 'g1', 'unaffected');
    await eventually(async () => (await history(url, 'u-bad')).length === 2 && (await history(url, 'u-good')).length === 1, 15_000, 'both conversations persisted');
    expect(texts(await history(url, 'u-bad'))).toEqual(['first', 'after']);
    expect(texts(await history(url, 'u-good'))).toEqual(['unaffected']);
    const holes = (await infra.prisma.logHole.findMany({ where: { conversationId: 'u-bad' }, orderBy: { untilSeq: 'asc' } })).map((hole) => [Number(hole.untilSeq), hole.reason]);
    expect(holes).toEqual([
      [nulId.seq, 'undecodable'],
      [nulText.seq, 'undecodable'],
    ]);
  });
});

describe('a batch Postgres refuses', () => {
  const seqline = useSeqline();

  it('is tried again, counted, until Postgres takes it, and then persisted exactly once', async () => {
    const { url, infra } = seqline.server;
    await createConversation(url, 'f-retry');
    await post(url, 'f-retry', 'm1', 'before');
    await eventually(async () => (await history(url, 'f-retry')).length === 1);
    const failures = async () => (await metric(url, 'seqline_persist_flush_failures_total')) ?? 0;
    expect(await failures()).toBe(0);

    // A table the persister writes is gone for a while (a migration gone wrong, say).
    await infra.prisma.$executeRaw`ALTER TABLE messages RENAME TO messages_away`;
    try {
      // Written to the log as the writer does (its own path reads Postgres when its cache is cold).
      await infra.log.append('f-retry', created('m2', 'during'), await infra.log.lastSeq('f-retry'), 'f-retry-m2');
      await eventually(async () => (await failures()) >= 2, 10_000, 'the write failed and was tried again');
      // The lag gauge says so on a scrape, with no readiness check polled to update it (a scrape reads the lag at most once a second).
      await eventually(async () => (await metric(url, 'seqline_persister_lag_events')) === 1, 3_000, 'the lag on a scrape');
    } finally {
      await infra.prisma.$executeRaw`ALTER TABLE messages_away RENAME TO messages`;
    }
    await eventually(async () => (await history(url, 'f-retry')).length === 2, 15_000, 'the batch written once Postgres takes it');
    expect(texts(await history(url, 'f-retry'))).toEqual(['before', 'during']);
    expect(await infra.prisma.logHole.count()).toBe(0);
  });
});

describe('a snapshot while Postgres is behind the log', () => {
  const seqline = useSeqline();

  it('steps over an event Postgres cannot store, as the persister does, however many events the snapshot reads from the log', async () => {
    const { url, infra, app } = seqline.server;
    // Postgres is given nothing: a snapshot is the log alone, read by direct gets for its first
    // events and by one bulk read after them.
    await app.get(LogPersister).onApplicationShutdown();
    await createConversation(url, 's-bad');
    for (let i = 1; i <= 9; i++) await post(url, 's-bad', `m${i}`, `text ${i}`);
    const last = (await http<{ items: { cursor: string }[] }>(url, 'GET', '/v1/conversations/s-bad/events?limit=100')).body.items.at(-1);
    const js = jetstream(infra.stream.nc);
    await js.publish(`${seqline.settings.log.prefix}.log.s-bad`, JSON.stringify({ prev: seqOf(last!.cursor), event: created('nul', 'a\u0000b') }));
    await post(url, 's-bad', 'after', 'after');

    const device = new WsDevice(url, 's-bad');
    await device.connect();
    expect([...device.messages.values()].map((message) => [message.id, message.text])).toEqual([
      ...Array.from({ length: 9 }, (_, i) => [`m${i + 1}`, `text ${i + 1}`]),
      ['after', 'after'],
    ]);
    expect((await infra.messages.watermarks(['s-bad'])).get('s-bad')?.seq).toBe(0);
    await device.close();
  });
});

describe('a log recreated while the persister still holds events of the old one', () => {
  // Batches of two, written when full (or after 3 s): the persister waits on a full one while the
  // events after it queue behind.
  const seqline = useSeqline({ PERSIST_BATCH_EVENTS: '2', PERSIST_FLUSH_INTERVAL: '3s' });

  it('writes none of them under the new epoch, so every event of the new log persists', async () => {
    const { url, infra } = seqline.server;
    await createConversation(url, 'o-busy');
    await createConversation(url, 'o-late');
    // Old-log sequences well past those the new log starts with.
    for (let i = 0; i < 10; i++) await post(url, 'o-busy', `p${i}`, `old ${i}`);
    await eventually(async () => (await history(url, 'o-busy')).length === 10);
    const oldEpoch = infra.stream.epoch;

    // Postgres holds the persister's writes: it waits on a batch of two events while the consumer
    // receives the old log's next one, o-late's first; then the log is recreated.
    const lock = new pg.Client({ connectionString: seqline.settings.database.url });
    await lock.connect();
    let lateSeq = 0;
    try {
      await lock.query('BEGIN');
      await lock.query('LOCK TABLE conversations IN EXCLUSIVE MODE');
      let last = await infra.log.lastSeq('o-busy');
      for (let i = 10; i < 12; i++) last = (await infra.log.append('o-busy', created(`p${i}`, `old ${i}`), last, `o-busy-p${i}`)).seq;
      lateSeq = (await infra.log.append('o-late', created('l1', 'from the old log'), 0, 'o-late-l1')).seq;
      await eventually(async () => (await infra.stream.jsm.consumers.info(infra.stream.name, PERSISTER_CONSUMER)).delivered.stream_seq >= lateSeq, 10_000, 'the persister received the last event');
      await deleteLogStream(seqline.settings);
      await eventually(() => infra.stream.epoch !== oldEpoch, 10_000, 'the service follows the new log');
    } finally {
      await lock.query('COMMIT');
      await lock.end();
    }
    const newEpoch = infra.stream.epoch;

    const { body: written } = await http<{ cursor: string }>(url, 'POST', '/v1/conversations/o-late/messages', { messageId: 'l2', text: 'from the new log', authorId: 'u' });
    expect(seqOf(written.cursor)).toBeLessThan(lateSeq);
    await eventually(async () => (await history(url, 'o-late')).length > 0, 15_000, 'o-late persisted');
    expect(texts(await history(url, 'o-late'))).toEqual(['from the new log']);
    const watermark = await infra.prisma.conversation.findUniqueOrThrow({ where: { id: 'o-late' } });
    expect({ epoch: watermark.logEpoch, seq: Number(watermark.appliedSeq) }).toEqual({ epoch: newEpoch, seq: seqOf(written.cursor) });
    expect(await infra.prisma.logHole.count()).toBe(0);
  });
});

describe('`repair` of a conversation Postgres lost, while its log is written', () => {
  const seqline = useSeqline();

  it('keeps an event written after the repair read the log, which the persister acknowledged with no row to apply it to', async () => {
    const { url, infra } = seqline.server;
    await createConversation(url, 'rr-1');
    await post(url, 'rr-1', 'q1', 'before');
    const rows = () => persisted(infra, 'rr-1');
    await eventually(async () => (await rows()).length === 1);
    await infra.prisma.$executeRaw`DELETE FROM conversations WHERE id = 'rr-1'`;

    const nc = await connect({ servers: seqline.settings.nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      let late = 0;
      // The first read of the log is followed by an event that the persister has taken, and
      // acknowledged, before the repair writes what it read.
      const racing = new Proxy(infra.log, {
        get: (target, key) => {
          if (key === 'read') {
            return async (...args: Parameters<ConversationLog['read']>) => {
              const entries = await target.read(...args);
              if (late === 0) {
                late = (await target.append('rr-1', created('q2', 'during the repair'), await target.lastSeq('rr-1'), 'rr-1-q2')).seq;
                await eventually(async () => (await jsm.consumers.info(seqline.settings.log.stream, PERSISTER_CONSUMER)).ack_floor.stream_seq >= late, 10_000, 'the persister took the event');
              }
              return entries;
            };
          }
          const value: unknown = Reflect.get(target, key);
          return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
        },
      });
      const result = await new ConversationRepair(infra.stream, racing, infra.conversations, infra.messages).repair('rr-1');

      expect(result).toMatchObject({ conversationId: 'rr-1', log: 'whole', messages: 2, seq: late });
      expect(await rows()).toEqual(['before', 'during the repair']);
      expect((await infra.messages.watermarks(['rr-1'])).get('rr-1')).toEqual({ seq: late, epoch: infra.stream.epoch });
    } finally {
      await nc.close();
    }
  });
});

describe("the persister's consumer deleted under a running service (an operator, a cluster incident)", () => {
  const seqline = useSeqline();

  it('is set up again, and what is written afterwards reaches Postgres', async () => {
    const { url, infra } = seqline.server;
    await createConversation(url, 'pc-1');
    // Nothing of it persisted yet: only the consumer can bring its events (the quiet check looks at conversations it applied).
    await createConversation(url, 'pc-2');
    await post(url, 'pc-1', 'q1', 'before');
    const rows = (conversationId: string) => persisted(infra, conversationId);
    await eventually(async () => (await rows('pc-1')).length === 1);
    const nc = await connect({ servers: seqline.settings.nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.consumers.delete(seqline.settings.log.stream, PERSISTER_CONSUMER);
      await post(url, 'pc-2', 'q2', 'after');
      await eventually(async () => (await rows('pc-2')).length === 1, 20_000, 'the message written after the consumer was deleted persisted');
      expect(await rows('pc-2')).toEqual(['after']);
      expect((await jsm.consumers.info(seqline.settings.log.stream, PERSISTER_CONSUMER)).config.durable_name).toBe(PERSISTER_CONSUMER);
    } finally {
      await nc.close();
    }
  });
});
