import pg from 'pg';

export class DatabaseUnreachableError extends Error {}

/** Prisma codes for a database that could not be used at all (unreachable, timed out, out of connections), not for a wrong request. */
const UNAVAILABLE_CODES = new Set(['P1001', 'P1002', 'P1008', 'P1017', 'P2024']);
/** Prisma's transaction errors (P2028) name a busy pool only with this message; the others (expired, not found) are not the database's. */
const TRANSACTION_NOT_STARTED = /Unable to start a transaction in the given time/;
/** Driver adapter failures of the same kind. */
const UNAVAILABLE_KINDS = new Set(['DatabaseNotReachable', 'ConnectionClosed', 'SocketTimeout', 'TooManyConnections', 'DatabaseDoesNotExist']);
/** Postgres refusing work while it starts or stops (class 57, operator intervention; class 08, connection exception). */
const UNAVAILABLE_SQLSTATE = /^(57P0[1-4]|08)/;
const UNAVAILABLE_POOL_MESSAGES = /timeout exceeded when trying to connect|Connection terminated due to connection timeout|Connection terminated unexpectedly/;
/** A name that did not resolve for now (a DNS server restarting) or a route that went: the network's, not the request's. */
const UNAVAILABLE_SYSCALL = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'EHOSTDOWN', 'ENETUNREACH', 'ENETDOWN', 'ECONNABORTED', 'EAI_AGAIN']);

/** Postgres ended the statement: it ran longer than `statement_timeout` (or was cancelled). */
const QUERY_CANCELED = '57014';

/**
 * The SQLSTATE of a Postgres error, however it reached the caller: from `pg` itself, or wrapped by
 * Prisma's driver adapter (a model query's `DriverAdapterError`, a raw query's `P2010`).
 */
function sqlStateOf(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const e = error as { code?: unknown; meta?: { code?: unknown; driverAdapterError?: { cause?: { originalCode?: unknown } } }; cause?: { originalCode?: unknown } };
  for (const code of [e.meta?.driverAdapterError?.cause?.originalCode, e.cause?.originalCode, e.meta?.code, e.code]) {
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
  }
  return undefined;
}

/** True when Postgres ended a statement that ran past the connection's statement timeout. */
export function isStatementTimeout(error: unknown): boolean {
  return sqlStateOf(error) === QUERY_CANCELED;
}

/**
 * True when a database call failed because Postgres could not serve it, so the same request may
 * succeed later: the edge answers `UNAVAILABLE` (retryable) instead of `INTERNAL`.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (error instanceof DatabaseUnreachableError || isStatementTimeout(error)) return true;
  if (typeof error !== 'object' || error === null) return false;
  const e = error as { name?: string; code?: unknown; meta?: { driverAdapterError?: { cause?: { kind?: string } } }; cause?: { kind?: string } };
  if (e.name === 'PrismaClientInitializationError') return true;
  if (typeof e.code === 'string' && (UNAVAILABLE_CODES.has(e.code) || UNAVAILABLE_SYSCALL.has(e.code))) return true;
  if (e.code === 'P2028' && typeof (error as { message?: unknown }).message === 'string' && TRANSACTION_NOT_STARTED.test((error as { message: string }).message)) return true;
  // Postgres's own code, also where Prisma wraps it (a model query's P2039, a raw query's P2010).
  const sqlState = sqlStateOf(error);
  if (sqlState !== undefined && UNAVAILABLE_SQLSTATE.test(sqlState)) return true;
  const kind = e.meta?.driverAdapterError?.cause?.kind ?? (e.name === 'DriverAdapterError' ? e.cause?.kind : undefined);
  if (kind !== undefined && UNAVAILABLE_KINDS.has(kind)) return true;
  // The pool's own: no connection (new or free) within `connectionTimeoutMillis`.
  const message = (error as { message?: unknown }).message;
  return typeof message === 'string' && UNAVAILABLE_POOL_MESSAGES.test(message);
}

/** Creates the database named in `url` if it does not exist yet, so a fresh machine needs no manual step. */
export async function ensureDatabase(url: string): Promise<void> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.slice(1));
  // The database itself first, as the URL says (its TLS settings, a role that may only reach it).
  const direct = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  try {
    await direct.connect();
    await direct.end();
    return;
  } catch (error) {
    await direct.end().catch(() => undefined);
    if ((error as { code?: string }).code !== DATABASE_DOES_NOT_EXIST) throw unreachable(target, error);
  }
  // Missing: created from the `postgres` database, reached with the same settings.
  const admin = new URL(url);
  admin.pathname = '/postgres';
  admin.searchParams.delete('schema');
  const client = new pg.Client({ connectionString: admin.toString(), connectionTimeoutMillis: 5_000 });
  try {
    await client.connect();
  } catch (error) {
    throw unreachable(target, error);
  }
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (found.rowCount === 0) await client.query(`CREATE DATABASE "${name.replace(/"/g, '""')}"`);
  } catch (error) {
    // Two instances starting together may race to create it.
    if ((error as { code?: string }).code !== '42P04') throw error;
  } finally {
    await client.end();
  }
}

const DATABASE_DOES_NOT_EXIST = '3D000';

function unreachable(target: URL, error: unknown): DatabaseUnreachableError {
  return new DatabaseUnreachableError(`Cannot reach Postgres at ${target.host} (${(error as Error).message}). Start Postgres or set DATABASE_URL.`);
}
