import { createHash } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { createConversation, http, useSeqline } from '@seqline/testing';
import WebSocket from 'ws';

const SECRET = 'test-secret-that-is-long-enough-for-hs256!';
const ADMIN_KEY = 'admin-key-for-tests';
const admin = { 'x-api-key': ADMIN_KEY };
const APP = 'https://app.example.com';
const EVIL = 'https://evil.example.com';

/** Opens a socket with `headers` on the upgrade and reports how the server answered it. */
function upgrade(url: string, path: string, headers: Record<string, string>): Promise<{ opened: true } | { opened: false; status: number; contentType: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${url.replace(/^http/, 'ws')}${path}`, { headers });
    socket.once('open', () => {
      socket.close();
      resolve({ opened: true });
    });
    socket.once('unexpected-response', (_request, response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ opened: false, status: response.statusCode!, contentType: response.headers['content-type'], body }));
    });
    socket.once('error', (error) => reject(error));
  });
}

const refusal = (origin: string) => ({ code: 'ORIGIN_NOT_ALLOWED', message: `pages from ${origin} may not use this service; add the origin to ALLOWED_ORIGINS` });

describe('ALLOWED_ORIGINS', () => {
  const seqline = useSeqline({
    AUTH_JWT_SECRET: SECRET,
    ADMIN_API_KEYS: createHash('sha256').update(ADMIN_KEY).digest('hex'),
    ALLOWED_ORIGINS: `${APP},https://*.partner.example`,
    LIMIT_CONNECTIONS_PER_USER: '1',
  });
  let token: string;

  beforeAll(async () => {
    await createConversation(seqline.server.url, 'o1', undefined, admin);
    token = (await http<{ token: string }>(seqline.server.url, 'POST', '/v1/tokens', { userId: 'ana', conversations: { o1: ['read'] } }, admin)).body.token;
  });

  it('answers the preflight of an allowed origin with what a client may send', async () => {
    const response = await fetch(`${seqline.server.url}/v1/conversations`, {
      method: 'OPTIONS',
      headers: { origin: APP, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
    });
    expect(response.status).toBe(204);
    expect(Object.fromEntries([...response.headers].filter(([name]) => name.startsWith('access-control-') || name === 'vary'))).toEqual({
      'access-control-allow-origin': APP,
      'access-control-allow-methods': 'GET, POST',
      'access-control-allow-headers': 'Authorization, Content-Type, X-API-Key, Last-Event-ID',
      'access-control-max-age': '600',
      vary: 'Origin',
    });
  });

  it('gives an allowed origin its answers, errors included, and never invites cookies', async () => {
    for (const origin of [APP, 'https://shop.partner.example', 'https://eu.shop.partner.example']) {
      const ok = await fetch(`${seqline.server.url}/v1/conversations/o1`, { headers: { origin, ...admin } });
      expect({ origin, status: ok.status, allow: ok.headers.get('access-control-allow-origin'), expose: ok.headers.get('access-control-expose-headers'), vary: ok.headers.get('vary') }).toEqual({
        origin,
        status: 200,
        allow: origin,
        expose: 'Retry-After',
        vary: 'Origin',
      });
      expect(ok.headers.get('access-control-allow-credentials')).toBeNull();
    }
    const unauthorized = await fetch(`${seqline.server.url}/v1/conversations/o1`, { headers: { origin: APP } });
    expect({ status: unauthorized.status, allow: unauthorized.headers.get('access-control-allow-origin'), body: await unauthorized.json() }).toMatchObject({ status: 401, allow: APP, body: { code: 'UNAUTHORIZED' } });
  });

  it('streams SSE to an allowed origin with the token in the query, as EventSource sends it', async () => {
    const controller = new AbortController();
    const response = await fetch(`${seqline.server.url}/v1/conversations/o1/stream?access_token=${token}`, { headers: { origin: APP }, signal: controller.signal });
    expect({ status: response.status, type: response.headers.get('content-type'), allow: response.headers.get('access-control-allow-origin') }).toEqual({ status: 200, type: 'text/event-stream; charset=utf-8', allow: APP });
    // The user's one connection is taken: the next stream is refused, retryably, and the browser may read when to retry.
    const second = await fetch(`${seqline.server.url}/v1/conversations/o1/stream`, { headers: { origin: APP, authorization: `Bearer ${token}` } });
    expect({ status: second.status, retryAfter: second.headers.get('retry-after'), allow: second.headers.get('access-control-allow-origin'), body: await second.json() }).toMatchObject({
      status: 429,
      retryAfter: '1',
      allow: APP,
      body: { code: 'RATE_LIMITED' },
    });
    controller.abort();
  });

  it('refuses any other origin with 403 ORIGIN_NOT_ALLOWED and no CORS header, on every route and file', async () => {
    for (const [method, path, headers] of [
      ['OPTIONS', '/v1/conversations', { 'access-control-request-method': 'GET' }],
      ['GET', '/v1/conversations/o1', admin],
      ['POST', '/v1/conversations', { ...admin, 'content-type': 'application/json' }],
      ['GET', `/v1/conversations/o1/stream?access_token=${token}`, {}],
      ['GET', '/health/live', {}],
      ['GET', '/sdk/seqline-client.mjs', {}],
      ['GET', '/v1/openapi.json', {}],
    ] as const) {
      for (const origin of [EVIL, 'https://partner.example', 'http://app.example.com', 'null']) {
        const response = await fetch(`${seqline.server.url}${path}`, { method, headers: { origin, ...headers }, body: method === 'POST' ? '{"id":"sneaky"}' : undefined });
        expect({ path, origin, status: response.status, allow: response.headers.get('access-control-allow-origin'), body: await response.json() }).toEqual({ path, origin, status: 403, allow: null, body: refusal(origin) });
      }
    }
    expect((await http(seqline.server.url, 'GET', '/v1/conversations/sneaky', undefined, admin)).status).toBe(404);
  });

  it('leaves requests without Origin (servers, agents, curl) and pages of its own origin alone', async () => {
    const plain = await fetch(`${seqline.server.url}/v1/conversations/o1`, { headers: admin });
    expect({ status: plain.status, allow: plain.headers.get('access-control-allow-origin'), vary: plain.headers.get('vary') }).toEqual({ status: 200, allow: null, vary: 'Origin' });
    const own = await fetch(`${seqline.server.url}/v1/conversations/o1`, { headers: { origin: seqline.server.url, ...admin } });
    expect(own.status).toBe(200);
  });

  it('checks the same list on WebSocket upgrades: 403 with the error as JSON before the socket opens', async () => {
    const path = `/v1/ws?access_token=${token}`;
    for (const origin of [EVIL, 'null']) {
      expect(await upgrade(seqline.server.url, path, { origin })).toEqual({ opened: false, status: 403, contentType: 'application/json', body: JSON.stringify(refusal(origin)) });
    }
    expect(await upgrade(seqline.server.url, path, { origin: APP })).toEqual({ opened: true });
    expect(await upgrade(seqline.server.url, path, { origin: 'https://shop.partner.example' })).toEqual({ opened: true });
    expect(await upgrade(seqline.server.url, path, { origin: seqline.server.url })).toEqual({ opened: true });
    expect(await upgrade(seqline.server.url, path, {})).toEqual({ opened: true });
  });
});

describe('ALLOWED_ORIGINS=*', () => {
  const seqline = useSeqline({ ALLOWED_ORIGINS: '*' });

  it('allows every origin on every transport, answering each with its own', async () => {
    for (const origin of [EVIL, 'null']) {
      const response = await fetch(`${seqline.server.url}/v1/conversations`, { headers: { origin } });
      expect({ origin, status: response.status, allow: response.headers.get('access-control-allow-origin') }).toEqual({ origin, status: 200, allow: origin });
      expect(await upgrade(seqline.server.url, '/v1/ws', { origin })).toEqual({ opened: true });
    }
  });
});

describe('a server running open (no authentication)', () => {
  const seqline = useSeqline();

  /** A request as a browser sends it, naming the host it asked for. */
  function request(host: string, origin: string): Promise<number> {
    const { port } = new URL(seqline.server.url);
    return new Promise((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/v1/conversations', headers: { host, origin } }, (response) => {
        response.resume();
        resolve(response.statusCode!);
      });
      req.once('error', reject);
      req.end();
    });
  }

  it('serves its own pages under a loopback name or address, but not under a name a page could point here (DNS rebinding)', async () => {
    const { port } = new URL(seqline.server.url);
    expect(await request(`127.0.0.1:${port}`, `http://127.0.0.1:${port}`)).toBe(200);
    expect(await request(`localhost:${port}`, `http://localhost:${port}`)).toBe(200);
    expect(await request(`rebound.example:${port}`, `http://rebound.example:${port}`)).toBe(403);
  });
});
