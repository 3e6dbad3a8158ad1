import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { Msg, Subscription } from '@nats-io/transport-node';
import type { Settings } from '@seqline/config';
import { AgentCommandSchema, ErrorCode, SeqlineError, type AgentReply } from '@seqline/protocol';
import { LogStream } from '@seqline/streams';
import type { Logger } from 'pino';
import { LOGGER, SETTINGS } from '../core/tokens.js';
import { ConversationWriter } from './conversation-writer.service.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { RateLimiter } from '../auth/rate-limiter.js';

const QUEUE = 'seqline-ingest';

/**
 * Answers agents' requests on `<prefix>.agent.<conversation>`. Instances share a queue group,
 * so each request is handled once by whichever instance is free.
 */
@Injectable()
export class AgentListener implements OnApplicationBootstrap, OnApplicationShutdown {
  private subscription?: Subscription;
  private readonly encoder = new TextEncoder();
  private readonly decoder = new TextDecoder();
  private readonly limiter: RateLimiter;

  constructor(
    private readonly stream: LogStream,
    private readonly writer: ConversationWriter,
    private readonly metrics: MetricsService,
    @Inject(SETTINGS) private readonly settings: Settings,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    this.limiter = new RateLimiter(settings.limits.agentCommandsPerSecond);
  }

  onApplicationBootstrap(): void {
    this.subscription = this.stream.nc.subscribe(this.stream.subjects.allAgent, {
      queue: QUEUE,
      callback: (error, msg) => {
        if (error) {
          this.logger.error({ err: error }, 'agent subscription failed');
          return;
        }
        void this.handle(msg);
      },
    });
  }

  async onApplicationShutdown(): Promise<void> {
    await this.subscription?.drain().catch(() => undefined);
  }

  private async handle(msg: Msg): Promise<void> {
    const conversationId = this.stream.subjects.conversationOf(msg.subject);
    const reply = await this.execute(conversationId, msg.data);
    if (!reply.ok) {
      this.metrics.commandsRefused.inc({ code: reply.error.code });
      this.logger.info({ conversationId, code: reply.error.code }, 'agent command refused');
    }
    if (msg.reply) msg.respond(this.encoder.encode(JSON.stringify(reply)));
  }

  private async execute(conversationId: string, data: Uint8Array): Promise<AgentReply> {
    try {
      // Per conversation: an agent flooding one conversation slows no other.
      if (!this.limiter.take(conversationId)) {
        throw new SeqlineError(ErrorCode.RateLimited, `over ${this.settings.limits.agentCommandsPerSecond} commands per second for this conversation; retry shortly`);
      }
      if (data.length > this.settings.limits.frameBytes) {
        throw new SeqlineError(ErrorCode.FrameTooLarge, `command is ${data.length} bytes; the limit is ${this.settings.limits.frameBytes}`);
      }
      let json: unknown;
      try {
        json = JSON.parse(this.decoder.decode(data));
      } catch {
        throw new SeqlineError(ErrorCode.BadFrame, 'command is not valid JSON');
      }
      const parsed = AgentCommandSchema.safeParse(json);
      if (!parsed.success) {
        throw new SeqlineError(ErrorCode.ValidationFailed, parsed.error.issues.map((issue) => `${issue.path.join('.') || 'command'}: ${issue.message}`).join('; '));
      }
      const result = await this.writer.write(conversationId, parsed.data);
      return { ok: true, cursor: result.cursor, duplicate: result.duplicate };
    } catch (error) {
      if (error instanceof SeqlineError) return { ok: false, error: error.toBody() };
      this.logger.error({ err: error, conversationId }, 'agent command failed');
      return { ok: false, error: { code: ErrorCode.Unavailable, message: 'the service could not apply the command; retry it' } };
    }
  }
}
