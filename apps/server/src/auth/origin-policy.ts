import type { IncomingHttpHeaders } from 'node:http';
import { Inject, Injectable } from '@nestjs/common';
import { isOriginAllowed, type Settings } from '@seqline/config';
import { ErrorCode, SeqlineError } from '@seqline/protocol';
import { SETTINGS } from '../core/tokens.js';

/**
 * Which browser pages may use the service, on every transport: those on an origin in
 * `ALLOWED_ORIGINS`, and those the service itself serves (the `Origin` names the `Host` asked
 * for; running open, only under a loopback name or an IP address). A request without `Origin` does not come from a page (a server, an agent, a native app,
 * curl) and is not judged here: its credentials are.
 */
@Injectable()
export class OriginPolicy {
  constructor(@Inject(SETTINGS) private readonly settings: Settings) {}

  /** The error to answer a request with, or undefined when it may go on. */
  refusal(headers: IncomingHttpHeaders): SeqlineError | undefined {
    const origin = headers.origin;
    if (origin === undefined || isOriginAllowed(this.settings.http.allowedOrigins, origin) || sameOrigin(origin, headers.host, this.settings.auth === undefined)) return undefined;
    return new SeqlineError(ErrorCode.OriginNotAllowed, `pages from ${origin.slice(0, 200)} may not use this service; add the origin to ALLOWED_ORIGINS`);
  }
}

/**
 * Whether the page is one this service served. Running open (no authentication), only when it was
 * reached by a loopback name or an IP address: any other name could be one an attacker's page made
 * point here after it loaded (DNS rebinding), and open, such a page could read everything.
 */
function sameOrigin(origin: string, host: string | undefined, open: boolean): boolean {
  if (host === undefined) return false;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false;
  }
  if (url.host !== host.toLowerCase()) return false;
  return !open || isLoopbackOrAddress(url.hostname);
}

function isLoopbackOrAddress(hostname: string): boolean {
  return hostname === 'localhost' || hostname.endsWith('.localhost') || hostname.startsWith('[') || /^\d{1,3}(\.\d{1,3}){3}$/.test(hostname);
}
