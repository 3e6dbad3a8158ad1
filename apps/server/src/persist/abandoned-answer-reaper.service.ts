import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { Settings } from '@seqline/config';
import { messageKey, MessageRepository } from '@seqline/persistence';
import { ABANDONED_ANSWER_REASON, ErrorCode, SeqlineError } from '@seqline/protocol';
import { ConversationLog, Lease, LogStream } from '@seqline/streams';
import type { Logger } from 'pino';
import { LOGGER, SETTINGS } from '../core/tokens.js';
import { ConversationWriter } from '../ingest/conversation-writer.service.js';
import { AnswerStillActive } from '../ingest/command-decider.js';
import { LogPersister } from './log-persister.service.js';

/** Candidates looked at per sweep. */
const SWEEP_PAGE = 100;
/** How long a refused candidate is passed over, and how many are remembered. */
const PASS_OVER_MS = 10 * 60_000;
/** Refused as unavailable (Postgres or the log slow or away for now): tried again soon, once that has likely passed. */
const PASS_OVER_UNAVAILABLE_MS = 30_000;
const MAX_PASSED_OVER = 10_000;

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
  /**
   * Answers the service refused to end (their conversation cannot take the write for now): passed
   * over until the time given, so they do not fill every sweep's page and keep the others waiting.
   */
  private readonly passedOver = new Map<string, number>();

  constructor(
    private readonly messages: MessageRepository,
    private readonly writer: ConversationWriter,
    private readonly log: ConversationLog,
    private readonly leadership: Lease,
    private readonly stream: LogStream,
    private readonly persister: LogPersister,
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
      const now = Date.now();
      for (const [key, until] of this.passedOver) if (until <= now) this.passedOver.delete(key);
      const silentSince = new Date(now - this.settings.agentLeaseMs);
      const candidates = await this.messages.streamingSilentSince(silentSince, SWEEP_PAGE + this.passedOver.size, this.stream.epoch);
      for (const { conversationId, id } of candidates) {
        const key = messageKey(conversationId, id);
        if (this.passedOver.has(key)) continue;
        try {
          const error = `${ABANDONED_ANSWER_REASON}: no event for ${this.settings.agentLeaseMs} ms`;
          await this.writer.write(conversationId, { type: 'message.expire', messageId: id, error, silentSince: silentSince.toISOString() });
          // An agent that is only slow (a model call that hangs) learns it now, not at its next
          // append, and stops generating what no device will be shown.
          this.log.publishCancelNotice({ conversationId, messageId: id, reason: error, status: 'failed' });
          this.logger.warn({ conversationId, messageId: id }, 'abandoned answer ended as failed');
        } catch (error) {
          // Ended meanwhile (MESSAGE_FINISHED), or still active in the log while its row lags: fine. Anything else is retried on the next sweep.
          if (!(error instanceof SeqlineError) && !(error instanceof AnswerStillActive)) this.logger.warn({ err: error, conversationId, messageId: id }, 'could not end abandoned answer');
          // The log has it ended, its row streaming: the end never reached Postgres (a delivery a
          // replicated consumer lost), and nothing will deliver it again. The persister reads it.
          if (error instanceof SeqlineError && error.code === ErrorCode.MessageFinished) {
            this.logger.warn({ conversationId, messageId: id }, 'an answer the log has ended is streaming in Postgres; reading its end from the log');
            this.persister.recheck(conversationId);
          }
          // Refused: its row stays streaming until Postgres catches up with the log; the next candidates come first meanwhile.
          // Still active in the log: looked at again once a lease has passed since its last event.
          if (this.passedOver.size < MAX_PASSED_OVER) {
            if (error instanceof SeqlineError) this.passedOver.set(key, now + (error.code === ErrorCode.Unavailable ? PASS_OVER_UNAVAILABLE_MS : PASS_OVER_MS));
            else if (error instanceof AnswerStillActive) this.passedOver.set(key, (Date.parse(error.lastEventAt) || now) + this.settings.agentLeaseMs);
          }
        }
      }
    } catch (error) {
      this.logger.warn({ err: error }, 'abandoned answer sweep failed');
    } finally {
      this.sweeping = false;
    }
  }
}
