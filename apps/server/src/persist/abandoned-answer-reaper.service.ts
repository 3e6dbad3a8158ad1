import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { Settings } from '@seqline/config';
import { MessageRepository } from '@seqline/persistence';
import { SeqlineError } from '@seqline/protocol';
import { Lease } from '@seqline/streams';
import type { Logger } from 'pino';
import { LOGGER, SETTINGS } from '../core/tokens.js';
import { ConversationWriter } from '../ingest/conversation-writer.service.js';
import { AnswerStillActive } from '../ingest/command-decider.js';

/**
 * Ends answers whose agent went silent: a message still `streaming` with no event for the agent
 * lease (`AGENT_LEASE`) is ended `failed` for every device and in Postgres, so nothing stays
 * streaming forever. Postgres only names candidates; silence is judged on the log, so a row that
 * lags behind a live answer (Postgres slow or down) never gets it ended. Runs on the instance
 * holding the leadership lease.
 */
@Injectable()
export class AbandonedAnswerReaper implements OnApplicationBootstrap, OnApplicationShutdown {
  private timer?: NodeJS.Timeout;
  private sweeping = false;

  constructor(
    private readonly messages: MessageRepository,
    private readonly writer: ConversationWriter,
    private readonly leadership: Lease,
    @Inject(SETTINGS) private readonly settings: Settings,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  onApplicationBootstrap(): void {
    const every = Math.max(100, Math.min(this.settings.agentLeaseMs / 4, 10_000));
    this.timer = setInterval(() => void this.sweep(), every);
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  async sweep(): Promise<void> {
    if (!this.leadership.held || this.sweeping) return;
    this.sweeping = true;
    try {
      const silentSince = new Date(Date.now() - this.settings.agentLeaseMs);
      for (const { conversationId, id } of await this.messages.streamingSilentSince(silentSince, 100)) {
        try {
          await this.writer.write(conversationId, {
            type: 'message.expire',
            messageId: id,
            error: `agent lease expired: no event for ${this.settings.agentLeaseMs} ms`,
            silentSince: silentSince.toISOString(),
          });
          this.logger.warn({ conversationId, messageId: id }, 'abandoned answer ended as failed');
        } catch (error) {
          // Ended meanwhile (MESSAGE_FINISHED), or still active in the log while its row lags: fine. Anything else is retried on the next sweep.
          if (!(error instanceof SeqlineError) && !(error instanceof AnswerStillActive)) this.logger.warn({ err: error, conversationId, messageId: id }, 'could not end abandoned answer');
        }
      }
    } catch (error) {
      this.logger.warn({ err: error }, 'abandoned answer sweep failed');
    } finally {
      this.sweeping = false;
    }
  }
}
