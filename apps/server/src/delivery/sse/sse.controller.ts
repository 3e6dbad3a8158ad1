import { Controller, Get, Headers, Inject, Param, Query, Req, Res, type BeforeApplicationShutdown } from '@nestjs/common';
import type { Settings } from '@seqline/config';
import { IdSchema } from '@seqline/protocol';
import type { Request, Response } from 'express';
import { SETTINGS } from '../../core/tokens.js';
import { ZodValidationPipe } from '../../rest/zod-validation.pipe.js';
import { Authenticator, credentialsFrom } from '../../auth/authenticator.service.js';
import { requireRight } from '../../auth/principal.js';
import { SubscriptionService } from '../subscription.service.js';

/**
 * `GET /v1/conversations/:id/stream`: the same replay-then-live stream as the WebSocket, as
 * `text/event-stream`. Every event's `id:` is its cursor, so a browser's EventSource resumes
 * with `Last-Event-ID` by itself.
 */
@Controller('v1/conversations')
export class SseController implements BeforeApplicationShutdown {
  private readonly open = new Set<AbortController>();

  constructor(
    private readonly subscriptions: SubscriptionService,
    private readonly authenticator: Authenticator,
    @Inject(SETTINGS) private readonly settings: Settings,
  ) {}

  /** Ends every stream on shutdown; browsers reconnect (to another instance) with Last-Event-ID. */
  beforeApplicationShutdown(): void {
    for (const controller of this.open) controller.abort();
  }

  @Get(':id/stream')
  async stream(
    @Param('id', new ZodValidationPipe(IdSchema)) id: string,
    @Headers('last-event-id') lastEventId: string | undefined,
    @Query('after') after: string | undefined,
    @Req() request: Request,
    @Res() response: Response,
  ): Promise<void> {
    const principal = await this.authenticator.authenticate(credentialsFrom(request.headers, request.url));
    requireRight(principal, id, 'read');
    const controller = new AbortController();
    this.open.add(controller);
    request.on('close', () => controller.abort());
    controller.signal.addEventListener('abort', () => this.open.delete(controller), { once: true });
    // The stream ends when the token does; EventSource reconnects, and a fresh token is needed then.
    if (principal.kind !== 'open' && principal.expiresAt) setTimeout(() => controller.abort(), Math.max(0, principal.expiresAt.getTime() - Date.now())).unref();
    const { start, events } = await this.subscriptions.open(id, lastEventId ?? after, controller.signal);
    response.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    response.write('retry: 1000\n\n');
    if (start.mode === 'snapshot') response.write(frame('snapshot', start.cursor, { conversationId: id, cursor: start.cursor, messages: start.messages }));
    const heartbeat = setInterval(() => response.write(': heartbeat\n\n'), this.settings.sse.heartbeatMs);
    // Streams are recycled now and then so load spreads over instances; EventSource resumes with Last-Event-ID.
    const recycle = setTimeout(() => controller.abort(), this.settings.sse.maxDurationMs);
    try {
      for await (const event of events) {
        response.write(frame(undefined, event.cursor, event));
        // A reader too slow to keep up is cut off rather than buffered without bound; it resumes from Last-Event-ID.
        if (response.writableLength > this.settings.ws.maxBufferedBytes) {
          controller.abort();
          break;
        }
      }
    } finally {
      clearInterval(heartbeat);
      clearTimeout(recycle);
      response.end();
    }
  }
}

function frame(event: string | undefined, id: string, data: unknown): string {
  return `${event ? `event: ${event}\n` : ''}id: ${id}\ndata: ${JSON.stringify(data)}\n\n`;
}
