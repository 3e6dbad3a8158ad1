import { HTTP_STATUS } from '@seqline/protocol';
import type { RequestHandler } from 'express';
import type { OriginPolicy } from '../auth/origin-policy.js';

/** Methods the API answers. */
const ALLOWED_METHODS = 'GET, POST';
/** What a client sends beyond the CORS-safelisted headers: credentials, JSON bodies, and EventSource's resume point. */
const ALLOWED_HEADERS = 'Authorization, Content-Type, X-API-Key, Last-Event-ID';
/** What a client reads beyond the safelisted headers: when to try a retryable error again. */
const EXPOSED_HEADERS = 'Retry-After';
/** Browsers cap it anyway (Chromium at 2 hours); short enough that a changed ALLOWED_ORIGINS takes hold soon. */
const PREFLIGHT_MAX_AGE_SECONDS = 600;

/**
 * CORS for REST, SSE and the static files (the device SDK bundle among them): a page on an
 * allowed origin gets its own origin back in `Access-Control-Allow-Origin` (never the literal
 * `*`, even when every origin is allowed, so there is one form of answer), and its preflights
 * answered; a page on any other origin gets `403 ORIGIN_NOT_ALLOWED` and no CORS header, so the
 * browser shows it nothing. Credentials are tokens in headers or the query, never cookies, so
 * `Access-Control-Allow-Credentials` is never sent and browsers send no cookies along.
 */
export function corsMiddleware(origins: OriginPolicy): RequestHandler {
  return (request, response, next) => {
    // The answer depends on Origin, so a cache must not hand one origin's answer to another.
    response.vary('Origin');
    const origin = request.headers.origin;
    if (origin === undefined) return next();
    const refusal = origins.refusal(request.headers);
    if (refusal) {
      response.status(HTTP_STATUS[refusal.code]).json(refusal.toBody());
      return;
    }
    response.setHeader('Access-Control-Allow-Origin', origin);
    if (request.method === 'OPTIONS' && request.headers['access-control-request-method'] !== undefined) {
      response.setHeader('Access-Control-Allow-Methods', ALLOWED_METHODS);
      response.setHeader('Access-Control-Allow-Headers', ALLOWED_HEADERS);
      response.setHeader('Access-Control-Max-Age', String(PREFLIGHT_MAX_AGE_SECONDS));
      response.status(204).end();
      return;
    }
    response.setHeader('Access-Control-Expose-Headers', EXPOSED_HEADERS);
    next();
  };
}
