import { Inject, Injectable } from '@nestjs/common';
import type { Settings } from '@seqline/config';
import { ErrorCode, SeqlineError } from '@seqline/protocol';
import { SETTINGS } from '../core/tokens.js';
import { RateLimiter } from './rate-limiter.js';

/**
 * Subscribes per user on this instance: WebSocket subscribes, token refreshes (`auth` frames) and
 * SSE streams opened, from all of the user's connections together. Each can cost log reads (a
 * resume from an old cursor) or a snapshot; counted per connection, a loop that reconnects would
 * get a fresh allowance each time. Bursts hold four sockets resubscribing to all they may hold.
 */
@Injectable()
export class SubscribeAllowance {
  private readonly buckets: RateLimiter;
  readonly rate: number;
  readonly burst: number;

  constructor(@Inject(SETTINGS) settings: Settings) {
    this.rate = settings.limits.deviceSubscribesPerSecond;
    this.burst = Math.max(2 * this.rate, 4 * settings.limits.subscriptionsPerSocket);
    this.buckets = new RateLimiter(this.rate, this.burst);
  }

  /**
   * Takes one subscribe for `user`, or for the connection itself (`connectionId`) when it has no
   * user (authentication off); throws `RATE_LIMITED` when over the rate.
   */
  take(user: string | undefined, connectionId: string): void {
    if (this.buckets.take(user === undefined ? `connection:${connectionId}` : `user:${user}`)) return;
    const whose = user === undefined ? 'on this connection' : 'per user';
    throw new SeqlineError(
      ErrorCode.RateLimited,
      `over ${this.rate} subscribes per second ${whose} (WebSocket subscribes, token refreshes and SSE streams together, LIMIT_DEVICE_SUBSCRIBES_PER_SECOND); retry shortly`,
    );
  }
}
