import { Inject, Injectable } from '@nestjs/common';
import type { Settings } from '@seqline/config';
import { SETTINGS } from '../core/tokens.js';

/** Open WebSocket and SSE connections per user on this instance, under one limit. */
@Injectable()
export class ConnectionLimiter {
  private readonly perUser = new Map<string, number>();

  constructor(@Inject(SETTINGS) private readonly settings: Settings) {}

  get limit(): number {
    return this.settings.limits.connectionsPerUser;
  }

  /** Counts a connection of `user` (anonymous ones are not counted); returns its release, or undefined at the limit. */
  admit(user: string | undefined): (() => void) | undefined {
    if (user === undefined) return () => undefined;
    const count = this.perUser.get(user) ?? 0;
    if (count >= this.limit) return undefined;
    this.perUser.set(user, count + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.perUser.get(user) ?? 1) - 1;
      if (left <= 0) this.perUser.delete(user);
      else this.perUser.set(user, left);
    };
  }
}
