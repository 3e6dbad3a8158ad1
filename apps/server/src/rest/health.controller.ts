import { Controller, Get, Inject, Res, ServiceUnavailableException } from '@nestjs/common';
import { HealthCheckService, HealthIndicatorService, type HealthCheckResult } from '@nestjs/terminus';
import type { Settings } from '@seqline/config';
import { ConversationRepository, MessageRepository } from '@seqline/persistence';
import { LogStream } from '@seqline/streams';
import type { Response } from 'express';
import { SETTINGS } from '../core/tokens.js';
import { within } from '../core/within.js';
import { SharedRead } from '../core/shared-read.js';
import { LogPersister } from '../persist/log-persister.service.js';

const CHECK_TIMEOUT_MS = 2_000;
/**
 * Results are shared for this long, and concurrent probes share one run: the endpoint needs no
 * credentials, so however often it is called, NATS, the stream and Postgres are asked about once a second.
 */
const CHECK_REUSE_MS = 1_000;

/** Rethrows a failed check's error as `message` only: the body is public, and a driver's own text can name hosts and users. */
function plainly<T>(message: string, check: () => Promise<T>): () => Promise<T> {
  return () =>
    check().catch(() => {
      throw new Error(message);
    });
}

/**
 * Liveness and readiness on `@nestjs/terminus` conventions, with the details in the body.
 * `/health/live`: the process serves HTTP. `/health/ready` (and `/health`): NATS connected, the
 * log stream reachable, Postgres answering; persister lag is reported, and past
 * `PERSIST_LAG_DEGRADED` seconds marks the instance degraded (still ready: devices are served
 * from the log, only history in Postgres is late).
 */
@Controller('health')
export class HealthController {
  private readonly holes = new SharedRead(() => within(this.messages.holeCount(), CHECK_TIMEOUT_MS), CHECK_REUSE_MS);

  constructor(
    private readonly health: HealthCheckService,
    private readonly indicators: HealthIndicatorService,
    private readonly stream: LogStream,
    private readonly conversations: ConversationRepository,
    private readonly messages: MessageRepository,
    private readonly persister: LogPersister,
    @Inject(SETTINGS) private readonly settings: Settings,
  ) {}

  @Get('live')
  live(): { status: 'ok' } {
    return { status: 'ok' };
  }

  @Get(['ready', ''])
  async ready(@Res({ passthrough: true }) response: Response): Promise<HealthCheckResult & { epoch: string }> {
    try {
      return { ...(await this.health.check([() => this.nats(), () => this.logStream(), () => this.postgres(), () => this.persisterLag()])), epoch: this.stream.epoch };
    } catch (error) {
      if (!(error instanceof ServiceUnavailableException)) throw error;
      response.status(503);
      return { ...(error.getResponse() as HealthCheckResult), epoch: this.stream.epoch };
    }
  }

  /** A round trip to the server: a connection that is only reconnecting (or cut off) is not closed, and still down. */
  private nats() {
    return this.indicators
      .check('nats')
      .attempt(async () => {
        if (this.stream.nc.isClosed()) throw new Error('connection closed');
        const rttMs = await plainly('no round trip to NATS', () => this.stream.nc.rtt())();
        return { server: this.stream.nc.getServer(), rttMs: Math.round(rttMs * 10) / 10 };
      })
      .withTimeout(CHECK_TIMEOUT_MS)
      .cacheFor(CHECK_REUSE_MS);
  }

  private logStream() {
    return this.indicators
      .check('stream')
      .attempt(async () => {
        const info = await plainly('the log stream could not be read', () => this.stream.jsm.streams.info(this.stream.name))();
        return { name: this.stream.name, epoch: this.stream.epoch, messages: info.state.messages, lastSeq: info.state.last_seq };
      })
      .withTimeout(CHECK_TIMEOUT_MS)
      .cacheFor(CHECK_REUSE_MS);
  }

  private postgres() {
    return this.indicators
      .check('postgres')
      .attempt(plainly('Postgres did not answer', () => this.conversations.ping()))
      .withTimeout(CHECK_TIMEOUT_MS)
      .cacheFor(CHECK_REUSE_MS);
  }

  private async persisterLag() {
    const check = this.indicators.check('persister');
    try {
      // During an election the lag's stream reads can wait for seconds; readiness answers in time regardless.
      const lag = await within(this.persister.lag(), CHECK_TIMEOUT_MS);
      // Holes are facts about history, not about this instance: reported, never a reason to take it out of service.
      const holes = await this.holes.get().catch(() => null);
      const details = { lagEvents: lag.events, lagSeconds: Math.round(lag.seconds * 10) / 10, ...(holes ? { holes: holes.holes, conversationsWithHoles: holes.conversations } : {}) };
      return lag.seconds > this.settings.persist.lagDegradedSeconds ? check.degraded(details) : check.up(details);
    } catch {
      return check.degraded({ message: 'persister lag unknown (the log did not answer in time)' });
    }
  }
}
