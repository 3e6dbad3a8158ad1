import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createConversation, http, launchBrowser, useSeqline, type Browser } from '@seqline/testing';
import { SignJWT } from 'jose';

const SECRET = 'test-secret-that-is-long-enough-for-hs256!';
const ADMIN_KEY = 'admin-key-for-tests';
const admin = { 'x-api-key': ADMIN_KEY };
/** Chromium resolves these names to this machine, so each server is a site of its own, as in production. */
const RESOLVE = '--host-resolver-rules=MAP *.seqline.test 127.0.0.1';

/** A web app's own server: an empty page, and (for the app that is not allowed) its own copy of the device SDK. */
async function servePages(withSdk: boolean): Promise<{ server: Server; origin: (host: string) => string }> {
  const sdk = readFileSync('libs/client/dist/browser/seqline-client.mjs');
  const server = createServer((request, response) => {
    if (withSdk && request.url === '/sdk/seqline-client.mjs') {
      response.writeHead(200, { 'content-type': 'text/javascript' }).end(sdk);
      return;
    }
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>web app</title>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { server, origin: (host) => `http://${host}.seqline.test:${port}` };
}

/**
 * A web app served from its own origin (app.seqline.test) using Seqline on another
 * (chat.seqline.test) with authentication on, in Chromium; and one from an origin not in
 * ALLOWED_ORIGINS (evil.seqline.test), refused on every transport.
 */
describe('web apps on their own origin, in a real browser', () => {
  let app: Awaited<ReturnType<typeof servePages>>;
  let evil: Awaited<ReturnType<typeof servePages>>;
  let browser: Browser;
  beforeAll(async () => {
    app = await servePages(false);
    evil = await servePages(true);
    browser = await launchBrowser([RESOLVE]);
  });
  afterAll(async () => {
    await browser?.close();
    for (const pages of [app, evil]) await new Promise((resolve) => pages?.server.close(resolve));
  });
  const seqline = useSeqline(() => ({
    AUTH_JWT_SECRET: SECRET,
    ADMIN_API_KEYS: createHash('sha256').update(ADMIN_KEY).digest('hex'),
    ALLOWED_ORIGINS: app.origin('app'),
    // Shorter than the answer, so EventSource also resumes across origins with Last-Event-ID.
    SSE_MAX_DURATION: '1s',
  }));
  const chat = () => seqline.server.url.replace('127.0.0.1', 'chat.seqline.test');
  let deviceToken: string;
  let adminToken: string;

  beforeAll(async () => {
    await createConversation(seqline.server.url, 'web', undefined, admin);
    deviceToken = (await http<{ token: string }>(seqline.server.url, 'POST', '/v1/tokens', { userId: 'ana', conversations: { web: ['read', 'post'] } }, admin)).body.token;
    adminToken = await new SignJWT({ role: 'admin' }).setProtectedHeader({ alg: 'HS256' }).setSubject('console').setAudience('seqline').setIssuer('seqline').setExpirationTime('1h').sign(new TextEncoder().encode(SECRET));
  });

  it('an allowed origin uses the device SDK over WebSocket, EventSource and REST', async () => {
    const agent = await seqline.agent('web-agent');
    const tokens = Array.from({ length: 60 }, (_, i) => ` t${i}`);
    await agent.onPrompt(async (prompt) => {
      const answer = agent.startMessage(prompt.conversationId, { messageId: `${prompt.messageId}-answer` });
      await answer.ready;
      for (const token of tokens) {
        answer.append(token);
        await new Promise((resolve) => setTimeout(resolve, 30));
      }
      await answer.complete();
    });
    const page = await browser.newPage();
    await page.goto(`${app.origin('app')}/`);
    const result = await page.evaluate(
      async ({ chat, deviceToken, adminToken }) => {
        const until = async (check: () => boolean, what: string, poll?: () => Promise<void>) => {
          for (const deadline = Date.now() + 30_000; (await poll?.(), !check()); await new Promise((resolve) => setTimeout(resolve, 20))) {
            if (Date.now() > deadline) throw new Error(`${what} did not happen`);
          }
        };
        // The SDK itself comes from the service, as a module script: that needs CORS too.
        const { SeqlineClient } = (await import(`${chat}/sdk/seqline-client.mjs`)) as typeof import('@seqline/client');
        const client = new SeqlineClient({ url: chat, token: () => deviceToken });
        const conversation = client.subscribe('web');

        const sse = { opens: 0, text: '', cursors: [] as string[], complete: false };
        const source = new EventSource(`${chat}/v1/conversations/web/stream?access_token=${encodeURIComponent(deviceToken)}`);
        source.onopen = () => sse.opens++;
        source.onmessage = (message) => {
          const { event } = JSON.parse(message.data as string) as { event: { type: string; messageId: string; delta?: string } };
          sse.cursors.push(message.lastEventId);
          if (event.messageId !== 'q1-answer') return;
          if (event.type === 'message.appended') sse.text += event.delta;
          if (event.type === 'message.completed') sse.complete = true;
        };
        await until(() => client.state === 'live' && sse.opens > 0, 'subscribing');
        await client.post('web', 'Hello from app.seqline.test', { messageId: 'q1' });
        await until(() => conversation.messages.find((m) => m.id === 'q1-answer')?.status === 'complete' && sse.complete, 'the answer');
        source.close();

        // REST with a token header: preflighted, as every cross-origin request with Authorization is.
        const headers = { authorization: `Bearer ${adminToken}` };
        let history: { items: { id: string; status: string; text: string }[] } = { items: [] };
        await until(() => history.items[1]?.status === 'complete', 'the history in Postgres', async () => {
          history = (await (await fetch(`${chat}/v1/conversations/web/messages`, { headers })).json()) as typeof history;
        });
        const created = await fetch(`${chat}/v1/conversations`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify({ id: 'web-2', title: 'from the app' }) });
        const refused = await fetch(`${chat}/v1/conversations/web/messages`, { headers: { authorization: `Bearer ${deviceToken}` } });
        await client.close();
        return {
          ws: conversation.messages.map((m) => [m.id, m.status, m.text]),
          sse: { opens: sse.opens > 1, text: sse.text, distinct: new Set(sse.cursors).size === sse.cursors.length },
          history: history.items.map((m) => [m.id, m.status, m.text]),
          created: { status: created.status, body: (await created.json()) as unknown },
          refused: { status: refused.status, body: (await refused.json()) as unknown },
        };
      },
      { chat: chat(), deviceToken, adminToken },
    );
    const answer = tokens.join('');
    const messages = [
      ['q1', 'complete', 'Hello from app.seqline.test'],
      ['q1-answer', 'complete', answer],
    ];
    expect(result).toEqual({
      ws: messages,
      sse: { opens: true, text: answer, distinct: true },
      history: messages,
      created: { status: 201, body: expect.objectContaining({ id: 'web-2', title: 'from the app' }) },
      refused: { status: 403, body: { code: 'FORBIDDEN', message: 'admin routes need an admin API key or an admin token' } },
    });
    await page.close();
  });

  it('an origin not in ALLOWED_ORIGINS is refused on every transport', async () => {
    const page = await browser.newPage();
    await page.goto(`${evil.origin('evil')}/`);
    const result = await page.evaluate(
      async ({ chat, deviceToken, adminToken }) => {
        const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
        const sdkFromService = await import(`${chat}/sdk/seqline-client.mjs`).then(
          () => 'loaded',
          (error: Error) => error.name,
        );

        // Each outcome is read once it is in, or after 10 s at most, so a socket or stream that did open is reported, not waited on.
        const socket = await new Promise<{ events: string[]; code: number | undefined }>((resolve) => {
          const events: string[] = [];
          const ws = new WebSocket(`${chat.replace('http', 'ws')}/v1/ws?access_token=${encodeURIComponent(deviceToken)}`);
          ws.onopen = () => events.push('open');
          ws.onerror = () => events.push('error');
          ws.onclose = (event) => resolve({ events, code: event.code });
          setTimeout(() => {
            resolve({ events, code: undefined });
            ws.close();
          }, 10_000);
        });

        // The app's own copy of the SDK: it keeps trying, and never gets a connection.
        const { SeqlineClient } = (await import(`${location.origin}/sdk/seqline-client.mjs`)) as typeof import('@seqline/client');
        const client = new SeqlineClient({ url: chat, token: () => deviceToken, reconnect: { minDelayMs: 50, maxDelayMs: 100 } });
        const states: string[] = [];
        client.onStateChange((state) => states.push(state));
        const conversation = client.subscribe('web');
        for (const deadline = Date.now() + 10_000; states.filter((state) => state === 'connecting').length <= 2 && Date.now() < deadline; ) await sleep(50);
        const sdk = { attempts: states.filter((state) => state === 'connecting').length, reached: [...new Set(states)].sort(), messages: conversation.messages.length };
        await client.close();

        const sse = await new Promise<{ events: string[]; readyState: number }>((resolve) => {
          const events: string[] = [];
          const source = new EventSource(`${chat}/v1/conversations/web/stream?access_token=${encodeURIComponent(deviceToken)}`);
          source.onopen = () => events.push('open');
          source.onmessage = () => events.push('message');
          source.onerror = () => {
            events.push('error');
            // Refused for good (not a reconnect): the outcome is in.
            if (source.readyState === EventSource.CLOSED) resolve({ events, readyState: source.readyState });
          };
          setTimeout(() => {
            resolve({ events, readyState: source.readyState });
            source.close();
          }, 10_000);
        });

        const outcome = (request: Promise<Response>) => request.then((response) => `answered ${response.status}`, (error: Error) => error.name);
        const rest = {
          simple: await outcome(fetch(`${chat}/health/live`)),
          preflighted: await outcome(fetch(`${chat}/v1/conversations`, { headers: { authorization: `Bearer ${adminToken}` } })),
          post: await outcome(fetch(`${chat}/v1/conversations`, { method: 'POST', headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' }, body: '{"id":"from-evil"}' })),
        };
        return { sdkFromService, socket, sdk, sse, rest };
      },
      { chat: chat(), deviceToken, adminToken },
    );
    expect(result.sdk.attempts).toBeGreaterThan(2);
    expect(result).toEqual({
      sdkFromService: 'TypeError',
      socket: { events: ['error'], code: 1006 },
      sdk: { attempts: result.sdk.attempts, reached: ['connecting', 'offline'], messages: 0 },
      sse: { events: ['error'], readyState: 2 },
      rest: { simple: 'TypeError', preflighted: 'TypeError', post: 'TypeError' },
    });
    expect((await http(seqline.server.url, 'GET', '/v1/conversations/from-evil', undefined, admin)).status).toBe(404);
    await page.close();
  });
});
