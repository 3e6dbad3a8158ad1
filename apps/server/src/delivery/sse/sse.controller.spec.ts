import { jest } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadEnv, settingsFrom } from '@seqline/config';
import { ErrorCode, SeqlineError } from '@seqline/protocol';
import type { Request, Response } from 'express';
import { SignJWT } from 'jose';
import { Authenticator, TokenExpiredError } from '../../auth/authenticator.service.js';
import { ConnectionLimiter } from '../../auth/connection-limiter.js';
import { SubscribeAllowance } from '../../auth/subscribe-allowance.js';
import { MetricsService } from '../../metrics/metrics.service.js';
import type { OpenSubscription, SubscriptionService } from '../subscription.service.js';
import { END_GRACE_MS, SseController } from './sse.controller.js';

/** A controller behind a real HTTP server, whose subscriptions open only when the test says. */
async function serve(env: Record<string, string> = {}) {
  const settings = settingsFrom(loadEnv(env));
  /** What the controller threw (the error filter answers it in the service). */
  const failures: unknown[] = [];
  const opening: ((opened: OpenSubscription) => void)[] = [];
  const refusing: ((error: Error) => void)[] = [];
  const subscriptions = { open: () => new Promise<OpenSubscription>((resolve, reject) => (opening.push(resolve), refusing.push(reject))) } as unknown as SubscriptionService;
  const controller = new SseController(subscriptions, new Authenticator(settings), new ConnectionLimiter(settings), new MetricsService(), new SubscribeAllowance(settings), settings);
  const server: Server = createServer((request, response) => {
    void controller.stream('c1', undefined, undefined, request as Request, response as Response).catch((error: unknown) => {
      failures.push(error);
      response.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/conversations/c1/stream`;
  return { controller, server, url, opening, refusing, failures };
}

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
}

describe('SseController as the instance stops', () => {
  it('answers a stream still opening with one that reconnects in a second, instead of leaving it unanswered', async () => {
    const { controller, server, url, opening } = await serve();
    try {
      const answer = fetch(url);
      await until(() => opening.length === 1);
      controller.beforeApplicationShutdown();
      const response = await answer;
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
      expect(await response.text()).toBe('retry: 1000\n\n');
    } finally {
      server.close();
    }
  }, 5_000);

  it('answers a stream opened afterwards the same way, without opening a subscription', async () => {
    const { controller, server, url, opening } = await serve();
    try {
      controller.beforeApplicationShutdown();
      const response = await fetch(url);
      expect(response.status).toBe(200);
      expect(await response.text()).toBe('retry: 1000\n\n');
      expect(opening).toHaveLength(0);
    } finally {
      server.close();
    }
  }, 5_000);
});

describe('SseController refusing a stream a retry may get past', () => {
  it('tells an EventSource in a stream that asks it to reconnect in 1-3 s, since it takes any other status as final', async () => {
    const { server, url, refusing } = await serve();
    try {
      const answer = fetch(url, { headers: { accept: 'text/event-stream' } });
      await until(() => refusing.length === 1);
      refusing[0]!(new SeqlineError(ErrorCode.Unavailable, 'Postgres is unavailable; retry shortly'));
      const response = await answer;
      expect(response.status).toBe(200);
      const text = await response.text();
      const match = /^retry: (\d+)\n\nevent: error\ndata: (.*)\n\n$/.exec(text);
      expect(match && { data: JSON.parse(match[2]!) as unknown, retryInRange: Number(match[1]) >= 1_000 && Number(match[1]) < 3_000 }).toEqual({
        data: { code: 'UNAVAILABLE', message: 'Postgres is unavailable; retry shortly' },
        retryInRange: true,
      });
    } finally {
      server.close();
    }
  }, 5_000);
});

describe('SseController when its reader goes away', () => {
  it('lets the stream go at once, keeping no timer for the reader that left', async () => {
    const { server, url, opening } = await serve();
    const timeouts = jest.spyOn(global, 'setTimeout');
    try {
      const aborter = new AbortController();
      const response = fetch(url, { signal: aborter.signal });
      await until(() => opening.length === 1);
      let closed = 0;
      opening[0]!({ start: { mode: 'snapshot', cursor: 'e-5', messages: [] }, attach: () => ({ close: () => void closed++ }), cancel: () => undefined } as unknown as OpenSubscription);
      await response;
      timeouts.mockClear();
      aborter.abort();
      await until(() => closed === 1);
      expect(closed).toBe(1);
      // The grace an ended stream gets to flush is for a reader still there (see END_GRACE_MS).
      expect(timeouts.mock.calls.filter(([, ms]) => ms === END_GRACE_MS)).toHaveLength(0);
    } finally {
      timeouts.mockRestore();
      server.closeAllConnections();
      server.close();
    }
  }, 5_000);
});

describe('SseController with a token that runs out while the stream opens', () => {
  it('sends nothing of the conversation: the stream is refused as expired and its subscription let go', async () => {
    const secret = 'a-secret-long-enough-for-hs256-0123456789';
    const { server, url, opening, failures } = await serve({ AUTH_JWT_SECRET: secret });
    try {
      const expiresAt = Math.ceil(Date.now() / 1000) + 1;
      const token = await new SignJWT({ role: 'device', conversations: { c1: ['read'] } })
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject('alice')
        .setAudience('seqline')
        .setIssuer('seqline')
        .setExpirationTime(expiresAt)
        .sign(new TextEncoder().encode(secret));
      const answer = fetch(url, { headers: { authorization: `Bearer ${token}` } }).then(
        async (response) => ({ status: response.status, text: await response.text() }),
        () => undefined,
      );
      await until(() => opening.length === 1);
      // The snapshot took until after the token's expiry.
      await new Promise((resolve) => setTimeout(resolve, expiresAt * 1000 - Date.now() + 50));
      let cancelled = 0;
      const messages = [{ id: 'm1', text: 'secret', author: { role: 'user', id: 'alice' }, status: 'complete' }];
      opening[0]!({ start: { mode: 'snapshot', cursor: 'e-5', messages }, attach: () => ({ close: () => undefined }), cancel: () => void cancelled++ } as unknown as OpenSubscription);
      await until(() => failures.length === 1);
      expect(failures[0]).toBeInstanceOf(TokenExpiredError);
      expect(cancelled).toBe(1);
      // Nothing was written: the request is left to the error filter (here: dropped).
      expect(await answer).toBeUndefined();
    } finally {
      server.close();
    }
  }, 10_000);
});

