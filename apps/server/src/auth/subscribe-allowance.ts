import { Inject, Injectable } from '@nestjs/common';
import type { Settings } from '@seqline/config';
import { ErrorCode, SeqlineError } from '@seqline/protocol';
import { SETTINGS } from '../core/tokens.js';
import { RateLimiter, rateKey } from './rate-limiter.js';

/**
 * Subscribes per user on this instance: WebSocket subscribes and SSE streams opened, from all of
 * the user's connections together. Each can cost log reads (a resume from an old cursor) or a
 * snapshot; counted per connection, a loop that reconnects would get a fresh allowance each time.
 * Bursts hold four sockets resubscribing to all they may hold.
 *
 * Token refreshes (`auth` frames) are counted per socket at the same rate: a user's other devices
 * resubscribing after a deploy must not keep one of them from renewing its token before it expires.
 */
@Injectable()
export class SubscribeAllowance {
  private readonly buckets: RateLimiter;
  private readonly refreshes: RateLimiter;
  readonly rate: number;
  readonly burst: number;

  constructor(@Inject(SETTINGS) settings: Settings) {
    this.rate = settings.limits.deviceSubscribesPerSecond;
    this.burst = Math.max(2 * this.rate, 4 * settings.limits.subscriptionsPerSocket);
    this.buckets = new RateLimiter(this.rate, this.burst);
    this.refreshes = new RateLimiter(this.rate);
  }

  /** Takes one token refresh for the socket `connectionId`; throws `RATE_LIMITED` when over the rate. */
  takeRefresh(connectionId: string): void {
    if (this.refreshes.take(connectionId)) return;
    throw new SeqlineError(ErrorCode.RateLimited, `over ${this.rate} token refreshes per second on this socket (LIMIT_DEVICE_SUBSCRIBES_PER_SECOND); retry shortly`);
  }

  /**
   * Takes one subscribe for `user`, or for the connection itself (`connectionId`) when it has no
   * user (authentication off); throws `RATE_LIMITED` when over the rate.
   */
  take(user: string | undefined, connectionId: string): void {
    if (this.buckets.take(rateKey(user, connectionId))) return;
    const whose = user === undefined ? 'on this connection' : 'per user';
    throw new SeqlineError(
      ErrorCode.RateLimited,
      `over ${this.rate} subscribes per second ${whose} (WebSocket subscribes and SSE streams together, LIMIT_DEVICE_SUBSCRIBES_PER_SECOND); retry shortly`,
    );
  }
}
