import { Controller, Get, Headers, Inject, Param, Query, Req, Res, type BeforeApplicationShutdown } from '@nestjs/common';
import type { Settings } from '@seqline/config';
import { ErrorCode, IdSchema, isRetryable, SeqlineError } from '@seqline/protocol';
import type { Request, Response } from 'express';
import { SETTINGS } from '../../core/tokens.js';
import { ZodValidationPipe } from '../../rest/zod-validation.pipe.js';
import { Authenticator, credentialsFrom, TokenExpiredError } from '../../auth/authenticator.service.js';
import { ConnectionLimiter } from '../../auth/connection-limiter.js';
import { SubscribeAllowance } from '../../auth/subscribe-allowance.js';
import { msUntilExpiry, requireRight, userOf } from '../../auth/principal.js';
import { MetricsService } from '../../metrics/metrics.service.js';
import { SubscriptionService, type OpenSubscription } from '../subscription.service.js';
import { writableBatching } from '../live/writable-flow.js';
import { SendBound } from '../live/send-bound.js';

/** How long an ended stream may take to flush before its socket is closed regardless (as ws does for WebSockets). */
export const END_GRACE_MS = 30_000;

/**
 * `GET /v1/conversations/:id/stream`: the same replay-then-live stream as the WebSocket, as
 * `text/event-stream`. Every event's `id:` is its cursor, so a browser's EventSource resumes
 * with `Last-Event-ID` by itself. SSE streams count towards the same per-user connection limit
 * and subscription gauge as WebSockets.
 */
@Controller('v1/conversations')
export class SseController implements BeforeApplicationShutdown {
  private readonly open = new Set<() => void>();
  private shuttingDown = false;
  constructor(
    private readonly subscriptions: SubscriptionService,
    private readonly authenticator: Authenticator,
    private readonly connections: ConnectionLimiter,
    private readonly metrics: MetricsService,
    /** Each open is a subscribe: the connection limit alone bounds streams open at once, not a loop that opens and drops them. */
    private readonly subscribes: SubscribeAllowance,
    @Inject(SETTINGS) private readonly settings: Settings,
  ) {}

  /** Ends every stream on shutdown; browsers reconnect (to another instance) with Last-Event-ID. */
  beforeApplicationShutdown(): void {
    this.shuttingDown = true;
    for (const end of this.open) end();
  }

  @Get(':id/stream')
  async stream(
    @Param('id', new ZodValidationPipe(IdSchema)) id: string,
    @Headers('last-event-id') lastEventId: string | undefined,
    @Query('after') after: string | undefined,
    @Req() request: Request,
    @Res() response: Response,
  ): Promise<void> {
    // Express answers HEAD with the GET route: a stream whose body is never sent, holding one of
    // the user's connections until it ends (a link checker with a user's token would use them up).
    if (request.method === 'HEAD') {
      response.status(405).setHeader('Allow', 'GET').end();
      return;
    }
    try {
      await this.serve(id, lastEventId, after, request, response);
    } catch (error) {
      // An EventSource takes any answer but 200 as final: a refusal that a retry may get past (a
      // dependency down, a limit) is said in a stream it reconnects from by itself.
      if (error instanceof SeqlineError && isRetryable(error.code) && !response.headersSent && !gone(response) && acceptsEventStream(request)) {
        return retryLater(response, error);
      }
      throw error;
    }
  }

  private async serve(id: string, lastEventId: string | undefined, after: string | undefined, request: Request, response: Response): Promise<void> {
    const principal = await this.authenticator.authenticate(credentialsFrom(request.headers, request.url));
    requireRight(principal, id, 'read');
    // Gone while its token was checked: its close came before anything below could hear it.
    // (The socket, not the request: a request whose body was read is destroyed, its client still there.)
    if (gone(response)) return;
    // Opened as the instance stops: sent on at once, before it holds the shutdown up.
    if (this.shuttingDown) return comeBackLater(response);
    const user = userOf(principal);
    // Without a user (authentication off) a stream has nothing to be counted by before it opens.
    if (user !== undefined) this.subscribes.take(user, '');
    const release = this.connections.admit(user);
    if (!release) throw new SeqlineError(ErrorCode.RateLimited, `at most ${this.connections.limit} connections per user (WebSocket and SSE together)`);
    this.metrics.subscriptions.inc();
    const timers: NodeJS.Timeout[] = [];
    let ended = false;
    let cancel = (): void => undefined;
    /**
     * `cutOff`: the reader stopped reading, so what is buffered for it is dropped with its socket.
     * `stopping`: the instance stops; a stream not answered yet is answered, to come back elsewhere.
     */
    const end = (cutOff = false, stopping = false): void => {
      if (ended) return;
      ended = true;
      this.open.delete(endForShutdown);
      for (const timer of timers) clearTimeout(timer);
      cancel();
      release();
      this.metrics.subscriptions.dec();
      if (!response.headersSent) {
        // Ended while it opened (the instance stopping): an unanswered request would hold the
        // server's close, and with it the hand-over of its write partitions, until the client gives up.
        if (stopping && !gone(response)) comeBackLater(response);
        return;
      }
      if (cutOff) {
        response.destroy();
        return;
      }
      response.end();
      // A reader that stalled just now would otherwise keep the socket and its buffer until TCP gives up.
      setTimeout(() => {
        if (!response.writableFinished) response.destroy();
      }, END_GRACE_MS).unref();
    };
    const endForShutdown = (): void => end(false, true);
    this.open.add(endForShutdown);
    // The reader left: nothing is flushed to it any more, so its socket goes now, with no grace timer holding it.
    response.on('close', () => end(true));
    try {
      // An empty header (a client that has no id yet) is no cursor: `?after=` still counts.
      const opened = await this.subscriptions.open(id, lastEventId || after).catch((error: unknown) => {
        // The log was recreated while the stream opened: an EventSource takes any answer but 200 as
        // final, so the stream starts from a snapshot of the new log, as one already open does.
        if (error instanceof SeqlineError && error.code === ErrorCode.CursorExpired) return this.subscriptions.open(id, undefined);
        throw error;
      });
      if (ended) return opened.cancel();
      cancel = opened.cancel;
      // The token ran out while the stream opened (a snapshot can take seconds): nothing of the
      // conversation goes out on it, as a WebSocket would have been closed meanwhile.
      if (msUntilExpiry(principal) === 0) throw new TokenExpiredError();
      response.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      response.write('retry: 1000\n\n');
      const failWith = (error: unknown): void => {
        if (ended) return;
        response.write(frame('error', undefined, error instanceof SeqlineError ? error.toBody() : { code: ErrorCode.Unavailable, message: 'the stream failed; reconnect' }));
        end();
      };
      let recovered = false;
      const bound = new SendBound(this.settings.ws.maxBufferedBytes);
      const follow = (opened: OpenSubscription): void => {
        const { start } = opened;
        if (start.mode === 'snapshot') {
          const snapshot = frame('snapshot', start.cursor, { conversationId: id, cursor: start.cursor, messages: start.messages });
          response.write(snapshot);
          bound.snapshotSent(Buffer.byteLength(snapshot));
        }
        const subscription = opened.attach({
          ...writableBatching(response, () => response.writableLength, this.settings.ws.maxBufferedBytes),
          send: (event) => {
            if (ended) return false;
            const backlog = response.writableLength;
            response.write(event.sseFrame);
            // A reader too slow to keep up is cut off rather than buffered without bound; it resumes from Last-Event-ID.
            if (bound.exceeded(backlog)) {
              this.metrics.slowConsumers.inc();
              end(true);
              return false;
            }
            return true;
          },
          fail: (error) => {
            // The log no longer holds what follows the reader's position (retention ran mid catch-up,
            // an event that cannot be read, a recreated log). An EventSource cannot drop its
            // Last-Event-ID, so ending the stream would bring it back to the same failure: the stream
            // goes on from a snapshot instead, once, as a WebSocket client does by itself.
            if (error instanceof SeqlineError && error.code === ErrorCode.CursorExpired && !recovered && !ended) {
              recovered = true;
              this.subscriptions.open(id, undefined).then((fresh) => (ended ? fresh.cancel() : follow(fresh)), failWith);
              return;
            }
            failWith(error);
          },
        });
        cancel = () => subscription.close();
      };
      follow(opened);
      // Cut off already, by what the subscription sent on attaching: no timers for a stream that has ended.
      if (ended) return cancel();
      timers.push(setInterval(() => response.write(': heartbeat\n\n'), this.settings.sse.heartbeatMs));
      // Streams are recycled now and then so load spreads over instances; EventSource resumes with Last-Event-ID.
      // Spread over the last fifth, so streams opened together (after a deploy) do not all end together again.
      const { maxDurationMs } = this.settings.sse;
      timers.push(setTimeout(() => end(), maxDurationMs - Math.floor(Math.random() * maxDurationMs * MAX_DURATION_SPREAD)));
      // The stream ends when the token does, saying so: the EventSource would come back with the
      // same token, be refused 401 and stop, and the page could not tell why.
      const expiresIn = msUntilExpiry(principal);
      if (expiresIn !== null) {
        timers.push(
          setTimeout(() => {
            if (ended) return;
            response.write(frame('error', undefined, new SeqlineError(ErrorCode.Unauthorized, TOKEN_EXPIRED).toBody()));
            end();
          }, expiresIn),
        );
      }
    } catch (error) {
      end();
      throw error;
    }
  }
}

/**
 * A stream that asks the EventSource to reconnect after `retryMs` (to another instance), saying
 * why if `error` is given, and ends: it takes any status but 200 as final, so a refusal would
 * end it for good.
 */
function comeBackLater(response: Response, retryMs = 1_000, error?: SeqlineError): void {
  response.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache, no-transform' });
  response.end(`retry: ${retryMs}\n\n${error ? frame('error', undefined, error.toBody()) : ''}`);
}

/** How much earlier than `SSE_MAX_DURATION` a stream may be ended, as a share of it. */
const MAX_DURATION_SPREAD = 0.2;
export const TOKEN_EXPIRED = 'the token expired: open the stream again with a fresh token, and ?after= the last event id seen';

/** Spread over 1-3 s, so the streams a failure refused together do not all come back at once. */
const RETRY_LATER_MS = { min: 1_000, spread: 2_000 };

/** A refusal as an EventSource hears it: a stream that says why, asks to reconnect in a moment, and ends. */
function retryLater(response: Response, error: SeqlineError): void {
  comeBackLater(response, RETRY_LATER_MS.min + Math.floor(Math.random() * RETRY_LATER_MS.spread), error);
}

/** Whether the client asked for an event stream (an EventSource always does), not for whatever answer comes. */
function acceptsEventStream(request: Request): boolean {
  return /\btext\/event-stream\b/.test(request.headers.accept ?? '');
}

function frame(event: string | undefined, id: string | undefined, data: unknown): string {
  return `${event ? `event: ${event}\n` : ''}${id ? `id: ${id}\n` : ''}data: ${JSON.stringify(data)}\n\n`;
}

/** Whether the client went away: its socket is gone (the request alone says nothing once its body was read). */
function gone(response: Response): boolean {
  return response.destroyed || response.socket?.destroyed !== false;
}
