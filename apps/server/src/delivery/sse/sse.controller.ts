import { Controller, Get, Headers, Inject, Param, Query, Req, Res } from '@nestjs/common';
import type { Settings } from '@seqline/config';
import { IdSchema } from '@seqline/protocol';
import type { Request, Response } from 'express';
import { SETTINGS } from '../../core/tokens.js';
import { ZodValidationPipe } from '../../rest/zod-validation.pipe.js';
import { SubscriptionService } from '../subscription.service.js';

/**
 * `GET /v1/conversations/:id/stream`: the same replay-then-live stream as the WebSocket, as
 * `text/event-stream`. Every event's `id:` is its cursor, so a browser's EventSource resumes
 * with `Last-Event-ID` by itself.
 */
@Controller('v1/conversations')
export class SseController {
  constructor(
    private readonly subscriptions: SubscriptionService,
    @Inject(SETTINGS) private readonly settings: Settings,
  ) {}

  @Get(':id/stream')
  async stream(
    @Param('id', new ZodValidationPipe(IdSchema)) id: string,
    @Headers('last-event-id') lastEventId: string | undefined,
    @Query('after') after: string | undefined,
    @Req() request: Request,
    @Res() response: Response,
  ): Promise<void> {
    const controller = new AbortController();
    request.on('close', () => controller.abort());
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
      for await (const event of events) response.write(frame(undefined, event.cursor, event));
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
