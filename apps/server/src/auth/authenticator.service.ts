import { createHash, timingSafeEqual } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import type { Settings } from '@seqline/config';
import { ErrorCode, illFormedAt, MAX_TOKEN_CHARS, RightSchema, SeqlineError, type CreateTokenBody, type Right } from '@seqline/protocol';
import { createRemoteJWKSet, errors, jwtVerify, SignJWT, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { z } from 'zod';
import { SETTINGS } from '../core/tokens.js';
import type { Principal } from './principal.js';

/** The latest time a JavaScript Date holds (ECMAScript's time value range). */
const MAX_DATE_MS = 8.64e15;

/** Clock skew allowed between the token's issuer and this server, in seconds (`exp` and `nbf` alike). */
const CLOCK_TOLERANCE_S = 5;

/** A token that was valid but has expired: the client should fetch a fresh one. */
export class TokenExpiredError extends SeqlineError {
  constructor() {
    super(ErrorCode.Unauthorized, 'token expired');
  }
}

/** The claims of a Seqline token beyond the registered ones (`sub`, `aud`, `iss`, `exp`). */
const ClaimsSchema = z.object({
  // It becomes the author of the device's posts: text Postgres cannot hold (a NUL) would stop them persisting.
  sub: z.string().min(1).max(128).refine((sub) => illFormedAt(sub) === undefined),
  role: z.enum(['device', 'admin']).default('device'),
  conversations: z.record(z.string(), z.array(RightSchema)).default({}),
});

export interface Credentials {
  /** A bearer token (JWT): from `Authorization: Bearer`, or `access_token` where headers cannot be set. */
  token?: string;
  /** An admin API key, from `x-api-key`. */
  apiKey?: string;
  /** The token came from the URL (`access_token`), which access logs keep. */
  tokenInUrl?: boolean;
}

/**
 * Verifies device and admin credentials: JWTs (HS256 with a shared secret, or RS256/ES256 from
 * a JWKS) and hashed admin API keys. Only the configured algorithms are accepted, so `alg: none`
 * and algorithm confusion are refused.
 */
@Injectable()
export class Authenticator {
  private readonly secret?: Uint8Array;
  private readonly jwks?: JWTVerifyGetKey;
  private readonly adminKeyHashes: Buffer[];

  constructor(@Inject(SETTINGS) private readonly settings: Settings) {
    const auth = settings.auth;
    this.secret = auth?.jwtSecret ? new TextEncoder().encode(auth.jwtSecret) : undefined;
    this.jwks = auth?.jwksUrl ? createRemoteJWKSet(new URL(auth.jwksUrl)) : undefined;
    this.adminKeyHashes = (auth?.adminKeyHashes ?? []).map((hash) => Buffer.from(hash, 'hex'));
  }

  get enabled(): boolean {
    return this.settings.auth !== undefined;
  }

  async authenticate(credentials: Credentials): Promise<Principal> {
    if (!this.enabled) return { kind: 'open' };
    if (credentials.apiKey) return this.verifyApiKey(credentials.apiKey);
    if (credentials.token) {
      const principal = await this.verifyToken(credentials.token);
      // A URL ends up in access logs: a device token there grants what the page shows, an admin one everything.
      if (credentials.tokenInUrl && principal.kind === 'admin') {
        throw new SeqlineError(ErrorCode.Unauthorized, 'an admin token is not taken from the URL (access logs keep URLs): send it as Authorization: Bearer');
      }
      return principal;
    }
    throw new SeqlineError(ErrorCode.Unauthorized, 'a token (Authorization: Bearer …) or an admin API key (x-api-key) is required');
  }

  async verifyToken(token: string): Promise<Principal> {
    const auth = this.settings.auth;
    // Running open, every connection is open already: a token changes nothing.
    if (!auth) return { kind: 'open' };
    // Taken at connect, such a token could never be handed over again in an `auth` frame.
    if (token.length > MAX_TOKEN_CHARS) throw new SeqlineError(ErrorCode.Unauthorized, `token refused: longer than ${MAX_TOKEN_CHARS} characters`);
    let payload: JWTPayload;
    try {
      // A token without `exp` would be good forever, and so would every connection opened with it.
      // A few seconds of clock skew with the issuer: a fresh token's `nbf`/`iat` a moment ahead of this clock is still good.
      const options = { audience: auth.audience, requiredClaims: ['exp'], clockTolerance: CLOCK_TOLERANCE_S, ...(auth.issuer ? { issuer: auth.issuer } : {}) };
      if (this.secret) {
        payload = (await jwtVerify(token, this.secret, { ...options, algorithms: ['HS256'] })).payload;
      } else if (this.jwks) {
        payload = (await jwtVerify(token, this.jwks, { ...options, algorithms: ['RS256', 'ES256'] })).payload;
      } else {
        throw new SeqlineError(ErrorCode.Unauthorized, 'this service accepts API keys only');
      }
    } catch (error) {
      if (error instanceof SeqlineError) throw error;
      if (error instanceof errors.JWTExpired) throw new TokenExpiredError();
      if (error instanceof errors.JWTClaimValidationFailed) throw new SeqlineError(ErrorCode.Unauthorized, `token refused: ${error.claim} claim is not valid`);
      // The key set could not be had (the identity provider down, slow or answering garbage): the
      // token may be good, so the caller retries rather than dropping it.
      if (this.jwks && keySetUnavailable(error)) {
        throw new SeqlineError(ErrorCode.Unavailable, 'the token cannot be checked now: the key set at AUTH_JWKS_URL could not be fetched; retry shortly');
      }
      throw new SeqlineError(ErrorCode.Unauthorized, 'token refused: invalid signature, algorithm or format');
    }
    const claims = ClaimsSchema.safeParse(payload);
    if (!claims.success) throw new SeqlineError(ErrorCode.Unauthorized, 'token refused: claims are malformed');
    // jose takes any number: one past what a Date holds would expire the connection at once (its timer NaN).
    if (payload.exp !== undefined && !(Number.isFinite(payload.exp) && Math.abs(payload.exp) * 1000 <= MAX_DATE_MS)) {
      throw new SeqlineError(ErrorCode.Unauthorized, 'token refused: exp claim is not valid');
    }
    const expiresAt = payload.exp ? new Date(payload.exp * 1000) : null;
    if (claims.data.role === 'admin') return { kind: 'admin', id: claims.data.sub, expiresAt };
    const rights = new Map<string, Set<Right>>(Object.entries(claims.data.conversations).map(([id, list]) => [id, new Set(list)]));
    return { kind: 'device', userId: claims.data.sub, rights, expiresAt };
  }

  verifyApiKey(key: string): Principal {
    const hash = createHash('sha256').update(key).digest();
    const match = this.adminKeyHashes.find((known) => known.length === hash.length && timingSafeEqual(known, hash));
    if (!match) throw new SeqlineError(ErrorCode.Unauthorized, 'unknown API key');
    return { kind: 'admin', id: `key:${match.toString('hex').slice(0, 8)}`, expiresAt: null };
  }

  /** Signs a device token with the service's secret (HS256). */
  async mint(body: CreateTokenBody): Promise<{ token: string; expiresAt: string }> {
    if (!this.secret) throw new SeqlineError(ErrorCode.NotFound, 'this service does not mint tokens: minting needs AUTH_JWT_SECRET (tokens signed elsewhere are checked against AUTH_JWKS_URL)');
    const auth = this.settings.auth!;
    // Whole seconds, as the token's `exp` counts them: the token must not expire before the time it comes with.
    const expiresAt = new Date(Math.floor(Date.now() / 1000) * 1000 + body.ttlSeconds * 1000);
    const token = await new SignJWT({ role: 'device', conversations: body.conversations })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(body.userId)
      .setAudience(auth.audience)
      .setIssuer(auth.issuer)
      .setIssuedAt()
      .setExpirationTime(expiresAt.getTime() / 1000)
      .sign(this.secret);
    // Many long conversation ids make a token no request or `auth` frame could carry.
    if (token.length > MAX_TOKEN_CHARS) {
      throw new SeqlineError(ErrorCode.ValidationFailed, `the token would be ${token.length} characters; a token may have at most ${MAX_TOKEN_CHARS}: mint it for fewer conversations (or shorter ids)`);
    }
    return { token, expiresAt: expiresAt.toISOString() };
  }
}

/**
 * Whether verifying failed for want of the remote key set rather than for the token: a timeout,
 * a network error, or an answer that is not a key set (jose throws a plain `JOSEError` only for a
 * non-200 answer or one that is not JSON).
 */
function keySetUnavailable(error: unknown): boolean {
  if (!(error instanceof errors.JOSEError)) return true;
  return error instanceof errors.JWKSTimeout || error instanceof errors.JWKSInvalid || error.constructor === errors.JOSEError;
}

/** Reads credentials from HTTP headers, or the `access_token` query parameter (WebSocket, EventSource). */
export function credentialsFrom(headers: Record<string, string | string[] | undefined>, url: string | undefined): Credentials {
  const authorization = typeof headers.authorization === 'string' ? headers.authorization : undefined;
  const bearer = authorization?.match(/^Bearer\s+(\S+)$/i)?.[1];
  const apiKey = typeof headers['x-api-key'] === 'string' ? headers['x-api-key'] : undefined;
  const query = queryParameter(url, 'access_token');
  return { token: bearer ?? query, apiKey, ...(bearer === undefined && query !== undefined ? { tokenInUrl: true } : {}) };
}

/**
 * A query parameter of a request target, read without parsing the whole URL: a target in
 * absolute form with a port `URL` refuses (`http://a:99999999/...`, which the router still
 * takes) must come out as no token, not as an error before any credential is checked.
 */
function queryParameter(url: string | undefined, name: string): string | undefined {
  const start = url?.indexOf('?') ?? -1;
  if (url === undefined || start < 0) return undefined;
  const end = url.indexOf('#', start);
  return new URLSearchParams(url.slice(start + 1, end < 0 ? undefined : end)).get(name) ?? undefined;
}
