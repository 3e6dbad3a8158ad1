import { createHash, randomUUID } from 'node:crypto';
import { connect } from '@nats-io/transport-node';
import type { ServerFrame } from '@seqline/protocol';
import { createConversation, eventually, http, SseStream, useSeqline, WsDevice } from '@seqline/testing';
import { SignJWT } from 'jose';
import WebSocket from 'ws';

const SECRET = 'test-secret-that-is-long-enough-for-hs256!';
const ADMIN_KEY = 'admin-key-for-tests';
const admin = { 'x-api-key': ADMIN_KEY };

async function sign(claims: Record<string, unknown>, options: { secret?: string; audience?: string; expiresIn?: string | number; subject?: string; notBefore?: number } = {}): Promise<string> {
  let jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setSubject(options.subject ?? 'alice').setAudience(options.audience ?? 'seqline').setIssuer('seqline').setIssuedAt();
  jwt = jwt.setExpirationTime(options.expiresIn ?? '1h');
  if (options.notBefore !== undefined) jwt = jwt.setNotBefore(options.notBefore);
  return jwt.sign(new TextEncoder().encode(options.secret ?? SECRET));
}

function unsigned(claims: Record<string, unknown>): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'none', typ: 'JWT' })}.${part({ sub: 'alice', aud: 'seqline', iss: 'seqline', exp: Math.floor(Date.now() / 1000) + 3600, ...claims })}.`;
}

/**
 * Opens a socket with `token` and reports how the server closed it, or 'open' once it answered a
 * ping (a socket is let in, or closed, only after its token is checked; frames sent meanwhile wait).
 */
function connectOutcome(url: string, token: string | undefined): Promise<{ code: number | 'open'; frames: ServerFrame[] }> {
  return new Promise((resolve) => {
    const frames: ServerFrame[] = [];
    const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/ws${token ? `?access_token=${encodeURIComponent(token)}` : ''}`);
    socket.on('message', (data) => {
      const frame = JSON.parse(String(data)) as ServerFrame;
      if (frame.type === 'pong' && frame.ref === 'probe') {
        socket.close();
        resolve({ code: 'open', frames });
      } else frames.push(frame);
    });
    socket.on('close', (code) => resolve({ code, frames }));
    socket.on('open', () => socket.send(JSON.stringify({ type: 'ping', ref: 'probe' })));
  });
}

describe('security', () => {
  const seqline = useSeqline({
    AUTH_JWT_SECRET: SECRET,
    ADMIN_API_KEYS: createHash('sha256').update(ADMIN_KEY).digest('hex'),
    LIMIT_CONNECTIONS_PER_USER: '3',
    LIMIT_DEVICE_POSTS_PER_SECOND: '2',
    LIMIT_AGENT_COMMANDS_PER_SECOND: '20',
  });
  let tokenA: string;

  beforeAll(async () => {
    for (const id of ['sec-a', 'sec-b']) await createConversation(seqline.server.url, id, undefined, admin);
    const minted = await http<{ token: string; expiresAt: string }>(seqline.server.url, 'POST', '/v1/tokens', { userId: 'alice', conversations: { 'sec-a': ['read', 'post', 'cancel'] } }, admin);
    expect(minted.status).toBe(201);
    tokenA = minted.body.token;
  });

  it('mints device tokens only for admin API keys', async () => {
    const body = { userId: 'bob', conversations: { 'sec-a': ['read'] } };
    expect(await http(seqline.server.url, 'POST', '/v1/tokens', body)).toMatchObject({ status: 401, body: { code: 'UNAUTHORIZED' } });
    expect(await http(seqline.server.url, 'POST', '/v1/tokens', body, { 'x-api-key': 'wrong' })).toMatchObject({ status: 401, body: { code: 'UNAUTHORIZED', message: 'unknown API key' } });
    expect(await http(seqline.server.url, 'POST', '/v1/tokens', body, { authorization: `Bearer ${tokenA}` })).toMatchObject({ status: 403, body: { code: 'FORBIDDEN' } });
  });

  it('admin routes refuse device tokens and missing keys, and accept admin keys and admin tokens', async () => {
    const url = seqline.server.url;
    expect(await http(url, 'GET', '/v1/conversations')).toMatchObject({ status: 401, body: { code: 'UNAUTHORIZED' } });
    expect(await http(url, 'GET', '/v1/conversations/sec-a/messages', undefined, { authorization: `Bearer ${tokenA}` })).toMatchObject({ status: 403, body: { code: 'FORBIDDEN' } });
    expect(await http(url, 'POST', '/v1/conversations', { id: 'sneaky' }, { authorization: `Bearer ${tokenA}` })).toMatchObject({ status: 403 });
    expect((await http(url, 'GET', '/v1/conversations/sec-a', undefined, admin)).status).toBe(200);
    const adminToken = await sign({ role: 'admin' }, { subject: 'ops' });
    expect((await http(url, 'GET', '/v1/conversations/sec-a', undefined, { authorization: `Bearer ${adminToken}` })).status).toBe(200);
    expect(await http(url, 'GET', '/v1/conversations/sneaky', undefined, admin)).toMatchObject({ status: 404 });
    // Never from the URL, where proxies log it: an admin token there is no credential at all.
    expect(await http(url, 'GET', `/v1/conversations/sec-a?access_token=${adminToken}`)).toMatchObject({ status: 401, body: { code: 'UNAUTHORIZED' } });
    // Nor on the streams, which take device tokens from the URL (EventSource cannot set headers).
    const inUrl = 'an admin token is not taken from the URL (access logs keep URLs): send it as Authorization: Bearer';
    const socket = await connectOutcome(url, adminToken);
    expect({ code: socket.code, frame: socket.frames[0] }).toEqual({ code: 4401, frame: { type: 'error', code: 'UNAUTHORIZED', message: inUrl } });
    const sse = await fetch(`${url}/v1/conversations/sec-a/stream?access_token=${adminToken}`);
    expect({ status: sse.status, body: (await sse.json()) as unknown }).toEqual({ status: 401, body: { code: 'UNAUTHORIZED', message: inUrl } });
  });

  it("takes a token whose issuer's clock runs a few seconds ahead (nbf just in the future), not one a minute ahead", async () => {
    const rights = { conversations: { 'sec-a': ['read'] } };
    const now = Math.floor(Date.now() / 1000);
    expect((await connectOutcome(seqline.server.url, await sign(rights, { notBefore: now + 3 }))).code).toBe('open');
    const ahead = await connectOutcome(seqline.server.url, await sign(rights, { notBefore: now + 60 }));
    expect({ code: ahead.code, frame: ahead.frames[0] }).toEqual({ code: 4401, frame: { type: 'error', code: 'UNAUTHORIZED', message: 'token refused: nbf claim is not valid' } });
  });

  it('mints a token that expires exactly when it says, to the second, and refuses a misspelt field instead of a default', async () => {
    const minted = await http<{ token: string; expiresAt: string }>(seqline.server.url, 'POST', '/v1/tokens', { userId: 'carol', conversations: { 'sec-a': ['read'] }, ttlSeconds: 60 }, admin);
    expect(minted.status).toBe(201);
    const { exp } = JSON.parse(Buffer.from(minted.body.token.split('.')[1]!, 'base64url').toString()) as { exp: number };
    expect(new Date(exp * 1000).toISOString()).toBe(minted.body.expiresAt);
    expect(Date.parse(minted.body.expiresAt) - Date.now()).toBeLessThanOrEqual(60_000);
    expect(Date.parse(minted.body.expiresAt) - Date.now()).toBeGreaterThan(55_000);
    expect(await http(seqline.server.url, 'POST', '/v1/tokens', { userId: 'carol', conversations: { 'sec-a': ['read'] }, ttl: 60 }, admin)).toEqual({
      status: 400,
      body: { code: 'VALIDATION_FAILED', message: expect.stringContaining('ttl') },
    });
  });

  it('mints a token for 100 conversations that a socket can be opened and refreshed with, and refuses one too long for any request to carry', async () => {
    const url = seqline.server.url;
    const ids = Array.from({ length: 100 }, () => randomUUID());
    const many = await http<{ token: string }>(url, 'POST', '/v1/tokens', { userId: 'dave', conversations: Object.fromEntries(ids.map((id) => [id, ['read', 'post', 'cancel']])) }, admin);
    expect(many.status).toBe(201);
    const device = new WsDevice(url, ids[0]!);
    device.token = many.body.token;
    await device.connect();
    device.send({ type: 'auth', ref: 'again', token: many.body.token });
    await device.until(() => device.frames.some((f) => 'ref' in f && f.ref === 'again'));
    expect(device.frames.find((f) => 'ref' in f && f.ref === 'again')?.type).toBe('authenticated');
    await device.close();
    // 100 ids of 128 characters: about 20,000 characters, past what a request's headers hold.
    const long = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`${i}`.padStart(128, 'c'), ['read']]));
    const refused = await http<{ code: string; message: string }>(url, 'POST', '/v1/tokens', { userId: 'dave', conversations: long }, admin);
    expect(refused.status).toBe(400);
    expect(refused.body).toEqual({ code: 'VALIDATION_FAILED', message: expect.stringMatching(/^the token would be \d+ characters; a token may have at most 12288: mint it for fewer conversations \(or shorter ids\)$/) });
  });

  it('a token for conversation A cannot read or post B over WebSocket, SSE or REST', async () => {
    const url = seqline.server.url;
    const device = new WsDevice(url, 'sec-a');
    device.token = tokenA;
    await device.connect();
    expect(device.frames[0]).toMatchObject({ type: 'snapshot', conversationId: 'sec-a' });
    const refused = async (frame: object): Promise<ServerFrame | undefined> => {
      const before = device.frames.length;
      device.send(frame);
      await device.until(() => device.frames.slice(before).some((f) => f.type === 'error' || f.type === 'ack' || f.type === 'snapshot'));
      return device.frames.slice(before).find((f) => f.type === 'error' || f.type === 'ack' || f.type === 'snapshot');
    };
    expect(await refused({ type: 'subscribe', conversationId: 'sec-b' })).toMatchObject({ type: 'error', code: 'FORBIDDEN', message: 'this token does not grant read on conversation sec-b' });
    expect(await refused({ type: 'post', conversationId: 'sec-b', messageId: 'x', text: 'hi' })).toMatchObject({ type: 'error', code: 'FORBIDDEN', message: 'this token does not grant post on conversation sec-b' });
    expect(await refused({ type: 'cancel', conversationId: 'sec-b', messageId: 'x' })).toMatchObject({ type: 'error', code: 'FORBIDDEN', message: 'this token does not grant cancel on conversation sec-b' });
    // Its own conversation works, and the author is the token's user whatever the frame says.
    expect(await refused({ type: 'post', conversationId: 'sec-a', messageId: 'mine', text: "<script>alert(1)</script>'; DROP TABLE messages; --", authorId: 'mallory' })).toMatchObject({ type: 'ack' });
    await device.until(() => device.messages.has('mine'));
    expect(device.messages.get('mine')).toMatchObject({ author: { role: 'user', id: 'alice' }, text: "<script>alert(1)</script>'; DROP TABLE messages; --" });
    await device.close();

    expect((await fetch(`${url}/v1/conversations/sec-b/stream?access_token=${tokenA}`)).status).toBe(403);
    const sse = await fetch(`${url}/v1/conversations/sec-b/stream`, { headers: { authorization: `Bearer ${tokenA}` } });
    expect({ status: sse.status, body: await sse.json() }).toMatchObject({ status: 403, body: { code: 'FORBIDDEN' } });
    expect((await http(url, 'GET', '/v1/conversations/sec-b/messages', undefined, { authorization: `Bearer ${tokenA}` })).status).toBe(403);
    // REST writes are admin routes: a device token posts nowhere there, not even to its own conversation.
    for (const id of ['sec-b', 'sec-a']) {
      expect(await http(url, 'POST', `/v1/conversations/${id}/messages`, { messageId: 'rest-post', text: 'hi' }, { authorization: `Bearer ${tokenA}` })).toEqual({
        status: 403,
        body: { code: 'FORBIDDEN', message: 'admin routes need an admin API key or an admin token' },
      });
    }
    await eventually(async () => (await http<{ items: { text: string }[] }>(url, 'GET', '/v1/conversations/sec-a/messages', undefined, admin)).body.items.length === 1);
    expect((await http<{ items: unknown[] }>(url, 'GET', '/v1/conversations/sec-b/messages', undefined, admin)).body.items).toEqual([]);
    const stored = await http<{ items: { text: string }[] }>(url, 'GET', '/v1/conversations/sec-a/messages', undefined, admin);
    expect(stored.body.items[0]!.text).toBe("<script>alert(1)</script>'; DROP TABLE messages; --");
  });

  it('refuses forged, expired, wrong-audience, alg:none and missing tokens', async () => {
    const url = seqline.server.url;
    const rights = { conversations: { 'sec-a': ['read'] } };
    const cases: [string, string | undefined, number, string][] = [
      ['missing', undefined, 4401, 'a token (Authorization: Bearer …) or an admin API key (x-api-key) is required'],
      ['forged', await sign(rights, { secret: 'another-secret-that-is-long-enough-too!!' }), 4401, 'token refused: invalid signature, algorithm or format'],
      ['expired', await sign(rights, { expiresIn: Math.floor(Date.now() / 1000) - 60 }), 4402, 'token expired'],
      ['wrong audience', await sign(rights, { audience: 'someone-else' }), 4401, 'token refused: aud claim is not valid'],
      ['alg none', unsigned(rights), 4401, 'token refused: invalid signature, algorithm or format'],
      // Past what a date can hold (a "never expires" value some issuers use): not a time the socket could be ended at.
      ['exp out of range', await sign(rights, { expiresIn: 9_999_999_999_999 }), 4401, 'token refused: exp claim is not valid'],
      ['garbage', 'not.a.jwt', 4401, 'token refused: invalid signature, algorithm or format'],
      // Signed by the identity provider, but a user id Postgres cannot store (its posts would stop persisting).
      ['NUL in sub', await sign(rights, { subject: 'al\u0000ice' }), 4401, 'token refused: claims are malformed'],
      ['unpaired surrogate in sub', await sign(rights, { subject: 'al\ud800ice' }), 4401, 'token refused: claims are malformed'],
      // One an `auth` frame could never carry again.
      ['over 12,288 characters', await sign({ ...rights, padding: 'p'.repeat(9_300) }), 4401, 'token refused: longer than 12288 characters'],
    ];
    for (const [name, token, code, message] of cases) {
      const outcome = await connectOutcome(url, token);
      expect({ name, code: outcome.code, frame: outcome.frames[0] }).toEqual({ name, code, frame: { type: 'error', code: 'UNAUTHORIZED', message } });
      const sse = await fetch(`${url}/v1/conversations/sec-a/stream`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
      expect({ name, status: sse.status }).toEqual({ name, status: 401 });
      expect(await sse.json()).toEqual({ code: 'UNAUTHORIZED', message });
    }
  });

  it('ends a socket when its token expires, unless a fresh token arrives first', async () => {
    const url = seqline.server.url;
    const short = await sign({ conversations: { 'sec-a': ['read'] } }, { expiresIn: Math.floor(Date.now() / 1000) + 5 });
    const refreshed = new WsDevice(url, 'sec-a');
    refreshed.token = short;
    await refreshed.connect();
    const expiring = new WsDevice(url, 'sec-a');
    expiring.token = short;
    await expiring.connect();
    refreshed.send({ type: 'auth', ref: 'other-user', token: await sign({ conversations: { 'sec-a': ['read'] } }, { subject: 'mallory' }) });
    await refreshed.until(() => refreshed.frames.some((f) => f.type === 'error' && f.ref === 'other-user'));
    expect(refreshed.frames.find((f) => f.type === 'error' && f.ref === 'other-user')).toMatchObject({ code: 'FORBIDDEN', message: 'a fresh token must be for the same user' });
    refreshed.send({ type: 'auth', ref: 'fresh', token: await sign({ conversations: { 'sec-a': ['read'] } }) });
    await refreshed.until(() => refreshed.frames.some((f) => f.type === 'authenticated'));
    await expiring.until(() => expiring.closeCode !== undefined, 10_000);
    expect(expiring.closeCode).toBe(4402);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(refreshed.closeCode).toBeUndefined();
    await refreshed.close();
  });

  it('ends an SSE stream when its token expires, keeps one whose token lasts months, and frees the connection slot of a closed stream', async () => {
    const url = seqline.server.url;
    const streamUrl = (token: string) => `${url}/v1/conversations/sec-a/stream?access_token=${encodeURIComponent(token)}`;
    const read = { conversations: { 'sec-a': ['read'] } };
    const expiring = await SseStream.open(streamUrl(await sign(read, { subject: 'sse-short', expiresIn: Math.floor(Date.now() / 1000) + 5 })));
    // Past the longest timer Node keeps (about 24.8 days).
    const lasting = await SseStream.open(streamUrl(await sign(read, { subject: 'sse-long', expiresIn: '60d' })));
    expect([expiring.status, lasting.status]).toEqual([200, 200]);
    await expiring.untilEnded(10_000);
    // Said before it ends: the EventSource would come back with the same token, be refused and stop.
    expect(expiring.frames.at(-1)).toEqual({
      event: 'error',
      data: JSON.stringify({ code: 'UNAUTHORIZED', message: 'the token expired: open the stream again with a fresh token, and ?after= the last event id seen' }),
    });
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(lasting.endedAt).toBeUndefined();
    expect((await http(url, 'POST', '/v1/conversations/sec-a/messages', { messageId: 'sse-after-expiry', text: 'still streaming', authorId: 'u' }, admin)).status).toBe(202);
    await eventually(async () => lasting.frames.some((frame) => frame.data.includes('sse-after-expiry')), 5_000, 'the lasting stream got the post');
    lasting.close();

    // Three streams take the user's three connections; a closed one gives its slot back.
    const token = await sign(read, { subject: 'sse-slots' });
    const held = await Promise.all([0, 1, 2].map(() => SseStream.open(streamUrl(token))));
    expect(held.map((stream) => stream.status)).toEqual([200, 200, 200]);
    // An EventSource takes any status but 200 as final: it hears the refusal in a stream it reconnects from.
    const refused = await SseStream.open(streamUrl(token));
    await refused.untilEnded(5_000);
    const limit = { code: 'RATE_LIMITED', message: 'at most 3 connections per user (WebSocket and SSE together)' };
    expect({ status: refused.status, frames: refused.frames }).toEqual({ status: 200, frames: [{ event: 'error', data: JSON.stringify(limit) }] });
    // A client that asks for any answer gets it as a status.
    const plain = await SseStream.open(streamUrl(token), { accept: 'application/json' });
    await plain.untilEnded(5_000);
    expect({ status: plain.status, body: JSON.parse(plain.body) as unknown }).toEqual({ status: 429, body: limit });
    held[0]!.close();
    await eventually(async () => {
      const again = await SseStream.open(streamUrl(token));
      again.close();
      return again.status === 200;
    }, 5_000, 'a slot freed');
    for (const stream of held) stream.close();
  });

  it('limits how fast one user opens SSE streams, so a loop that opens and drops them does not load the log for everyone', async () => {
    const url = seqline.server.url;
    const streamUrl = (token: string) => `${url}/v1/conversations/sec-a/stream?access_token=${encodeURIComponent(token)}`;
    const read = { conversations: { 'sec-a': ['read'] } };
    const looping = await sign(read, { subject: 'sse-loop' });
    const refusals: string[] = [];
    // A burst of 128, refilled at 20/s: refused well before 400 opens.
    for (let i = 0; i < 400 && refusals.length === 0; i++) {
      const stream = await SseStream.open(streamUrl(looping), { accept: 'application/json' });
      if (stream.status === 429) {
        await stream.untilEnded(5_000);
        const { message } = JSON.parse(stream.body) as { message: string };
        if (message.startsWith('over 20 subscribes')) refusals.push(message);
      }
      stream.close();
    }
    expect(refusals).toEqual(['over 20 subscribes per second per user (WebSocket subscribes and SSE streams together, LIMIT_DEVICE_SUBSCRIBES_PER_SECOND); retry shortly']);
    // Another user is not held back.
    const other = await SseStream.open(streamUrl(await sign(read, { subject: 'sse-other' })));
    expect(other.status).toBe(200);
    other.close();
  });

  it('limits connections per user and posts per device, affecting only the offender', async () => {
    const url = seqline.server.url;
    const token = await sign({ conversations: { 'sec-a': ['read', 'post'] } }, { subject: 'greedy' });
    const outcomes = [];
    const held: WsDevice[] = [];
    for (let i = 0; i < 3; i++) {
      const device = new WsDevice(url, 'sec-a');
      device.token = token;
      await device.connect();
      held.push(device);
    }
    outcomes.push(await connectOutcome(url, token));
    expect(outcomes[0]!.code).toBe(4429);
    // Another user is unaffected.
    expect((await connectOutcome(url, await sign({ conversations: { 'sec-a': ['read'] } }, { subject: 'polite' }))).code).toBe('open');

    const poster = held[0]!;
    for (let i = 0; i < 8; i++) poster.send({ type: 'post', ref: `p${i}`, conversationId: 'sec-a', messageId: `burst-${i}`, text: 'spam' });
    await poster.until(() => poster.frames.filter((f) => (f.type === 'ack' || f.type === 'error') && f.ref?.startsWith('p')).length === 8);
    const limited = poster.frames.filter((f) => f.type === 'error' && f.code === 'RATE_LIMITED');
    expect(limited.length).toBeGreaterThan(0);
    expect(limited.length).toBeLessThan(8);
    expect(limited[0]).toMatchObject({ message: 'over 2 posts and cancels per second; retry shortly' });
    // Another user posts at once, while the offender is still over its rate.
    const polite = new WsDevice(url, 'sec-a');
    polite.token = await sign({ conversations: { 'sec-a': ['read', 'post'] } }, { subject: 'polite' });
    await polite.connect();
    polite.send({ type: 'post', ref: 'calm', conversationId: 'sec-a', messageId: 'calm-post', text: 'hello' });
    await polite.until(() => polite.frames.some((f) => 'ref' in f && f.ref === 'calm'));
    expect(polite.frames.find((f) => 'ref' in f && f.ref === 'calm')).toMatchObject({ type: 'ack', messageId: 'calm-post' });
    await polite.close();
    for (const device of held) await device.close();
  });

  it('limits subscribes per user across sockets and SSE streams, so a device subscribing or reconnecting in a loop cannot load the log for everyone, and others subscribe meanwhile', async () => {
    const url = seqline.server.url;
    const token = await sign({ conversations: { 'sec-a': ['read'] } }, { subject: 'looping' });
    // A cursor far ahead of the log: each one costs log reads before its BAD_CURSOR.
    const ahead = `${seqline.server.infra.stream.epoch}-999999999`;
    const codes: string[] = [];
    let limitedMessage: string | undefined;
    const startedAt = Date.now();
    // Six sockets one after another, 60 subscribes each: counted per socket, each would have a burst of its own.
    for (let socket = 0; socket < 6; socket++) {
      const flooder = new WsDevice(url, 'sec-a');
      flooder.token = token;
      await flooder.connect();
      for (let i = 0; i < 60; i++) flooder.send({ type: 'subscribe', ref: `s${i}`, conversationId: 'sec-a', after: ahead });
      const answered = () => flooder.frames.filter((f): f is Extract<ServerFrame, { type: 'error' }> => f.type === 'error' && f.ref?.startsWith('s') === true);
      await flooder.until(() => answered().some((f) => f.ref === 's59'), 15_000);
      // The subscribes judged are still being read; one replaced by a later subscribe is not answered.
      await new Promise((resolve) => setTimeout(resolve, 300));
      codes.push(...answered().map((f) => f.code));
      limitedMessage ??= answered().find((f) => f.code === 'RATE_LIMITED')?.message;
      await flooder.close();
    }
    const seconds = (Date.now() - startedAt) / 1000;
    // The user's burst (four sockets' 32 subscriptions) and what the rate refilled meanwhile are judged; the rest is refused before any log read.
    const judged = codes.filter((code) => code === 'BAD_CURSOR').length;
    expect(judged).toBeGreaterThan(0);
    expect(judged).toBeLessThanOrEqual(128 + Math.ceil(20 * seconds));
    expect(codes.filter((code) => code === 'RATE_LIMITED').length).toBeGreaterThanOrEqual(360 - 128 - Math.ceil(20 * seconds) - 10);
    expect(codes.every((code) => code === 'BAD_CURSOR' || code === 'RATE_LIMITED')).toBe(true);
    const message = 'over 20 subscribes per second per user (WebSocket subscribes and SSE streams together, LIMIT_DEVICE_SUBSCRIBES_PER_SECOND); retry shortly';
    expect(limitedMessage).toBe(message);
    // The same user's SSE streams draw on the same allowance: refused after what the rate refilled since, not after a fresh burst of 128.
    const streamUrl = `${url}/v1/conversations/sec-a/stream?access_token=${encodeURIComponent(token)}`;
    let opened = 0;
    let refused: SseStream | undefined;
    while (!refused && opened < 128) {
      const stream = await SseStream.open(streamUrl, { accept: 'application/json' });
      if (stream.status === 429) refused = stream;
      else opened++;
      stream.close();
    }
    expect(opened).toBeLessThan(40);
    await refused!.untilEnded(5_000);
    expect(JSON.parse(refused!.body)).toEqual({ code: 'RATE_LIMITED', message });

    const other = new WsDevice(url, 'sec-a');
    other.token = await sign({ conversations: { 'sec-a': ['read'] } }, { subject: 'calm' });
    await other.connect();
    other.send({ type: 'subscribe', ref: 'mine', conversationId: 'sec-a' });
    await other.until(() => other.frames.some((f) => 'ref' in f && f.ref === 'mine'));
    expect(other.frames.find((f) => 'ref' in f && f.ref === 'mine')?.type).toBe('snapshot');
    await other.close();
  });

  it('limits agent commands per conversation without slowing other conversations', async () => {
    const nc = await connect({ servers: seqline.settings.nats.url });
    const subject = (id: string) => `${seqline.settings.log.prefix}.agent.${id}`;
    const request = async (id: string, command: object) => (await nc.request(subject(id), JSON.stringify(command), { timeout: 5_000 })).json<{ ok: boolean; error?: { code: string; message: string } }>();
    expect(await request('sec-a', { type: 'message.start', messageId: 'flood', agentId: 'noisy' })).toMatchObject({ ok: true });
    const replies = await Promise.all(Array.from({ length: 80 }, (_, i) => request('sec-a', { type: 'message.append', messageId: 'flood', part: i + 1, delta: 'x' })));
    const limited = replies.filter((reply) => reply.error?.code === 'RATE_LIMITED');
    expect(limited.length).toBeGreaterThan(0);
    expect(limited[0]!.error).toEqual({ code: 'RATE_LIMITED', message: 'over 20 commands per second for this conversation; retry shortly' });
    // Another conversation is answered at once, while this one is still over its rate.
    const startedAt = performance.now();
    expect(await request('sec-b', { type: 'message.start', messageId: 'calm', agentId: 'quiet' })).toMatchObject({ ok: true });
    expect(performance.now() - startedAt).toBeLessThan(1_000);
    await nc.close();
  });
});

describe('security with admin API keys and no signing secret', () => {
  const seqline = useSeqline({ ADMIN_API_KEYS: createHash('sha256').update(ADMIN_KEY).digest('hex') });

  it('refuses to mint device tokens for good (not as a passing failure), and still serves admin keys', async () => {
    const body = { userId: 'alice', conversations: { 'sec-a': ['read'] } };
    expect(await http(seqline.server.url, 'POST', '/v1/tokens', body, admin)).toMatchObject({
      status: 404,
      body: { code: 'NOT_FOUND', message: 'this service does not mint tokens: minting needs AUTH_JWT_SECRET (tokens signed elsewhere are checked against AUTH_JWKS_URL)' },
    });
    expect((await http(seqline.server.url, 'GET', '/v1/conversations', undefined, admin)).status).toBe(200);
    expect((await http(seqline.server.url, 'GET', '/v1/conversations')).status).toBe(401);
  });
});

describe('security with a key set that cannot be fetched', () => {
  // Nothing listens on port 9: the identity provider is down.
  const seqline = useSeqline({ AUTH_JWKS_URL: 'http://127.0.0.1:9/.well-known/jwks.json' });

  it('answers a token it cannot check UNAVAILABLE (retry), not UNAUTHORIZED (drop the token)', async () => {
    const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const token = `${part({ alg: 'RS256', kid: 'k1' })}.${part({ sub: 'alice', aud: 'seqline', iss: 'seqline', role: 'admin', exp: Math.floor(Date.now() / 1000) + 3600 })}.${'A'.repeat(342)}`;
    const response = await http(seqline.server.url, 'GET', '/v1/conversations', undefined, { authorization: `Bearer ${token}` });
    expect(response).toEqual({ status: 503, body: { code: 'UNAVAILABLE', message: 'the token cannot be checked now: the key set at AUTH_JWKS_URL could not be fetched; retry shortly' } });
    // A token that is not one is still refused as such.
    expect(await http(seqline.server.url, 'GET', '/v1/conversations', undefined, { authorization: 'Bearer not-a-token' })).toMatchObject({ status: 401, body: { code: 'UNAUTHORIZED' } });
    // A WebSocket is told to come back with the same token (1013), not to get another (4401).
    const socket = await connectOutcome(seqline.server.url, token);
    expect(socket).toEqual({ code: 1013, frames: [{ type: 'error', code: 'UNAVAILABLE', message: 'the token cannot be checked now: the key set at AUTH_JWKS_URL could not be fetched; retry shortly' }] });
    expect((await connectOutcome(seqline.server.url, 'not-a-token')).code).toBe(4401);
  });
});
