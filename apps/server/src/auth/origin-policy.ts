import type { IncomingHttpHeaders } from 'node:http';
import { Inject, Injectable } from '@nestjs/common';
import { isOriginAllowed, type Settings } from '@seqline/config';
import { ErrorCode, SeqlineError } from '@seqline/protocol';
import { SETTINGS } from '../core/tokens.js';

/**
 * Which browser pages may use the service, on every transport: those on an origin in
 * `ALLOWED_ORIGINS`, and those the service itself serves (the `Origin` names the `Host` asked
 * for). A request without `Origin` does not come from a page (a server, an agent, a native app,
 * curl) and is not judged here: its credentials are.
 */
@Injectable()
export class OriginPolicy {
  constructor(@Inject(SETTINGS) private readonly settings: Settings) {}

  /** The error to answer a request with, or undefined when it may go on. */
  refusal(headers: IncomingHttpHeaders): SeqlineError | undefined {
    const origin = headers.origin;
    if (origin === undefined || isOriginAllowed(this.settings.http.allowedOrigins, origin) || sameOrigin(origin, headers.host)) return undefined;
    return new SeqlineError(ErrorCode.OriginNotAllowed, `pages from ${origin.slice(0, 200)} may not use this service; add the origin to ALLOWED_ORIGINS`);
  }
}

function sameOrigin(origin: string, host: string | undefined): boolean {
  if (host === undefined) return false;
  try {
    return new URL(origin).host === host.toLowerCase();
  } catch {
    return false;
  }
}
