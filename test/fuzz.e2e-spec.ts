import { createHash } from 'node:crypto';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createConversation, eventually, http, useSeqline, WsDevice } from '@seqline/testing';
import fc from 'fast-check';
import { SignJWT } from 'jose';
import WebSocket from 'ws';

const SECRET = 'fuzzing-secret-that-is-long-enough-for-hs256';
const ADMIN_KEY = 'fuzz-admin-key';
const admin = { 'x-api-key': ADMIN_KEY };
/** Any generated value as text (`String` throws on objects without a prototype). */
const text = (value: unknown): string => (typeof value === 'string' ? value : JSON.stringify(value) ?? 'undefined');
/** Percent-encodes any generated value; a lone surrogate cannot be sent in a URL at all, so it is replaced. */
const uri = (value: unknown): string => encodeURIComponent(text(value).replace(/[\ud800-\udfff]/g, '\ufffd'));
export const FUZZ_RUNS = Number(process.env.FUZZ_RUNS ?? 500);

/** Values that tend to break parsers: odd strings, huge numbers, nested junk, prototype keys. */
const nasty = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.constantFrom('', ' ', '\u0000', '../../etc/passwd', "'; DROP TABLE messages; --", '<script>alert(1)</script>', '__proto__', 'constructor', '%00', '\ud800', 'a'.repeat(5000), 'x-9007199254740993', 'mwv2oxpk-1'),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 3 }),
);
const frameTypes = fc.constantFrom('subscribe', 'unsubscribe', 'post', 'cancel', 'ping', 'auth', 'teleport', '', 'SUBSCRIBE');
const wsFrame = fc.oneof(
  fc.record({ type: frameTypes, conversationId: fc.oneof(nasty, fc.constantFrom('fuzz-target', 'fuzz-other')), after: nasty, messageId: nasty, text: nasty, token: nasty, ref: nasty }, { requiredKeys: ['type'] }).map((frame) => JSON.stringify(frame)),
  fc.string({ maxLength: 200 }),
  fc.json({ maxDepth: 3 }),
  fc.constantFrom('{', '[]', 'null', '"', '{"type":"subscribe","conversationId":"fuzz-target","after":"zz-1"}', '{"__proto__":{"type":"post"}}'),
);

/**
 * Hostile input on every surface while two devices stream an answer: nothing crashes, nothing
 * answers 5xx, the devices end exact, and refused input leaves Postgres unchanged.
 */
describe('fuzzing every input surface', () => {
  const seqline = useSeqline({ AUTH_JWT_SECRET: SECRET, ADMIN_API_KEYS: createHash('sha256').update(ADMIN_KEY).digest('hex'), LIMIT_DEVICE_POSTS_PER_SECOND: '1000' });
  let nc: NatsConnection;
  let readOnly: string;
  let cases = 0;

  beforeAll(async () => {
    nc = await connect({ servers: seqline.settings.nats.url });
    for (const id of ['fuzz-target', 'fuzz-other', 'fuzz-stream']) await createConversation(seqline.server.url, id, undefined, admin);
    readOnly = await new SignJWT({ conversations: { 'fuzz-target': ['read'], 'fuzz-stream': ['read'] } })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('fuzzer')
      .setAudience('seqline')
      .setIssuer('seqline')
      .setExpirationTime('1h')
      .sign(new TextEncoder().encode(SECRET));
  });
  afterAll(async () => {
    await nc.close();
    process.stdout.write(`fuzzing: ${cases} generated cases\n`);
  });

  it('survives hostile WebSocket frames, SSE headers, REST parameters and agent payloads', async () => {
    const url = seqline.server.url;
    const snapshotRows = async () => seqline.server.infra.prisma.message.findMany({ where: { conversationId: { in: ['fuzz-target', 'fuzz-other'] } }, orderBy: { id: 'asc' } });
    const rowsBefore = await snapshotRows();
    const started = new Set<string>();

    // Two devices follow an answer streamed through the whole run.
    const watchers = [new WsDevice(url, 'fuzz-stream'), new WsDevice(url, 'fuzz-stream')];
    for (const watcher of watchers) {
      watcher.token = readOnly;
      await watcher.connect();
    }
    const agent = await seqline.agent('fuzz-agent');
    const answer = agent.startMessage('fuzz-stream', { messageId: 'steady' });
    let expected = '';
    let streaming = true;
    const streamer = (async () => {
      for (let i = 0; streaming || i < 50; i++) {
        expected += ` s${i}`;
        answer.append(` s${i}`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      await answer.complete();
    })();

    const fuzzer = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/ws?access_token=${readOnly}`);
    let fuzzerClosed: { code: number; reason: string } | undefined;
    /** The codes of the error frames the fuzzer was answered: what was refused, and how. */
    const refusedWith = new Set<string>();
    let lastFrameAt = 0;
    fuzzer.on('message', (data) => {
      lastFrameAt = Date.now();
      const frame = JSON.parse(String(data)) as { type: string; code?: string };
      if (frame.type === 'error') refusedWith.add(frame.code!);
    });
    fuzzer.on('close', (code, reason) => (fuzzerClosed = { code, reason: String(reason) }));
    // Fuzzed once let in: frames sent while the token is still checked are held only up to a
    // limit, and a client over it is closed (as it should be), which a slow check would make likely.
    await new Promise<void>((resolve, reject) => {
      fuzzer.on('message', function ready(data) {
        if (!String(data).includes('"ref":"fuzz-ready"')) return;
        fuzzer.off('message', ready);
        resolve();
      });
      fuzzer.once('close', (code) => reject(new Error(`the fuzzer was closed (${code}) before it was let in`)));
      fuzzer.once('open', () => fuzzer.send(JSON.stringify({ type: 'ping', ref: 'fuzz-ready' })));
    });

    await fc.assert(
      fc.asyncProperty(fc.array(wsFrame, { minLength: 1, maxLength: 5 }), async (frames) => {
        cases++;
        for (const frame of frames) fuzzer.send(frame);
      }),
      { numRuns: FUZZ_RUNS },
    );
    // Frames are handled each on its own (a subscribe waits on log reads): once the socket has been
    // quiet for a second, every frame has been answered, and none failed inside the service.
    await eventually(() => Date.now() - lastFrameAt > 1_000, 30_000, 'the fuzzer answered');
    expect(refusedWith.has('BAD_FRAME')).toBe(true);
    expect([...refusedWith].filter((code) => code === 'INTERNAL' || code === 'UNAVAILABLE')).toEqual([]);
    await fc.assert(
      fc.asyncProperty(nasty, nasty, fc.constantFrom('fuzz-target', 'fuzz-other', 'nope', '..%2F', 'a b'), async (lastEventId, token, id) => {
        cases++;
        const controller = new AbortController();
        const response = await fetch(`${url}/v1/conversations/${encodeURIComponent(id)}/stream?access_token=${uri(token)}`, {
          headers: { 'last-event-id': uri(lastEventId).slice(0, 200), authorization: `Bearer ${text(token).slice(0, 100)}`.replace(/[^\x20-\x7e]/g, '') },
          signal: controller.signal,
        });
        expect(response.status).toBeLessThan(500);
        controller.abort();
      }),
      { numRuns: FUZZ_RUNS },
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('GET', 'POST'), fc.constantFrom('/v1/conversations', '/v1/conversations/fuzz-target', '/v1/conversations/fuzz-target/messages', '/v1/conversations/fuzz-target/events', '/v1/tokens'), nasty, nasty, nasty, fc.boolean(), async (method, path, after, limit, body, asAdmin) => {
        cases++;
        const query = `?after=${uri(after).slice(0, 300)}&limit=${uri(limit).slice(0, 50)}`;
        const response = await fetch(`${url}${path}${method === 'GET' ? query : ''}`, {
          method,
          headers: { 'content-type': 'application/json', ...(asAdmin ? admin : {}) },
          body: method === 'POST' ? (typeof body === 'string' ? body : JSON.stringify(body)) : undefined,
        });
        expect(response.status).toBeLessThan(500);
        const payload = (await response.json()) as { code?: string };
        if (response.status >= 400) expect(typeof payload.code).toBe('string');
      }),
      { numRuns: FUZZ_RUNS },
    );
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.json({ maxDepth: 3 }), fc.string({ maxLength: 100 }), fc.record({ type: fc.constantFrom('message.start', 'message.append', 'message.complete', 'message.fail', 'x'), messageId: nasty, part: nasty, delta: nasty, agentId: nasty, error: nasty }).map((c) => JSON.stringify(c))), fc.constantFrom('fuzz-other', 'nope', 'fuzz-stream'), async (payload, id) => {
        cases++;
        const reply = (await nc.request(`${seqline.settings.log.prefix}.agent.${id}`, payload, { timeout: 5_000 })).json<{ ok: boolean; error?: { code: string } }>();
        if (reply.ok) expect(id).not.toBe('nope');
        else expect(typeof reply.error!.code).toBe('string');
        // A generated start can be valid (any short id and agent id are): the answers it created are the only agent rows fuzz-other may gain.
        const command = (() => {
          try {
            return JSON.parse(payload) as { type?: unknown; messageId?: unknown };
          } catch {
            return undefined;
          }
        })();
        if (reply.ok && id === 'fuzz-other' && command?.type === 'message.start') started.add(String(command.messageId));
      }),
      { numRuns: FUZZ_RUNS },
    );

    streaming = false;
    await streamer;
    for (const watcher of watchers) {
      await watcher.until(() => watcher.messages.get('steady')?.status === 'complete');
      expect(watcher.text('steady')).toBe(expected);
      expect(watcher.violations).toEqual([]);
      await watcher.close();
    }
    expect(fuzzerClosed).toBeUndefined();
    // Again at the end: an answer slower than the quiet second above (a subscribe waiting on a log read) is counted too.
    expect([...refusedWith].filter((code) => code === 'INTERNAL' || code === 'UNAVAILABLE')).toEqual([]);
    fuzzer.close();
    expect((await http(url, 'GET', '/health')).status).toBe(200);
    // Refused input changed nothing: fuzz-target's rows are as they were, and fuzz-other holds
    // exactly the answers accepted starts created, once each (they are persisted within a flush or two).
    await eventually(async () => (await snapshotRows()).filter((row) => row.conversationId === 'fuzz-other').length >= started.size, 10_000, 'accepted starts persisted');
    const rowsAfter = await snapshotRows();
    expect(rowsAfter.filter((row) => row.conversationId === 'fuzz-target')).toEqual(rowsBefore.filter((row) => row.conversationId === 'fuzz-target'));
    const otherRows = rowsAfter.filter((row) => row.conversationId === 'fuzz-other');
    expect(otherRows.filter((row) => row.authorRole !== 'agent')).toEqual([]);
    expect(otherRows.map((row) => row.id).sort()).toEqual([...started].sort());
  });
});
