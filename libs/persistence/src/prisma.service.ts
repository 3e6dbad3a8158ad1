import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { BoundedClient, QUERY_BOUND_MARGIN_MS } from './bounded-client.js';
import { PrismaClient } from './generated/client.js';
import { schemaOf, searchPathOf } from './schema-engine.js';

// Longer than any periodic query's interval (the reaper's is at most 10 s), so an idle server
// keeps its connections instead of opening a new one for every sweep.
const IDLE_CONNECTION_MS = 60_000;

const CONNECT_TIMEOUT_MS = 10_000;
/** An idle connection to a database the network cut off is probed after this, not after the system's two hours. */
const KEEP_ALIVE_AFTER_MS = 10_000;

export interface PrismaServiceOptions {
  /**
   * Postgres ends a statement that runs longer (waiting for a lock included), so a statement held
   * up (an operator's migration, a long transaction) frees its connection instead of keeping it,
   * and the pool, for as long as the lock lasts. None when not given (operator tools).
   */
  statementTimeoutMs?: number;
}

/** The Prisma client, over the `pg` driver; only repositories use it. */
export class PrismaService extends PrismaClient {
  constructor(url: string, options: PrismaServiceOptions = {}) {
    const timeout = options.statementTimeoutMs;
    const pool = new pg.Pool({
      connectionString: url,
      // Waiting for a connection (a new one, or a free one of the pool) is bounded: a database cut
      // off by the network fails requests as unavailable instead of queueing them without end.
      max: 25,
      idleTimeoutMillis: IDLE_CONNECTION_MS,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      keepAlive: true,
      keepAliveInitialDelayMillis: KEEP_ALIVE_AFTER_MS,
      // A query on a connection whose server went without a word is bounded too (see BoundedClient).
      // And a transaction whose next statement was lost with its connection ends on the server
      // rather than holding its locks until the server's keepalive notices, hours later.
      ...(timeout === undefined
        ? {}
        : { statement_timeout: timeout, idle_in_transaction_session_timeout: timeout + QUERY_BOUND_MARGIN_MS, Client: BoundedClient, queryBoundMs: timeout + QUERY_BOUND_MARGIN_MS }),
      ...searchPathOf(url),
    } as pg.PoolConfig);
    pool.on('release', (_error: Error | undefined, client: pg.PoolClient) => (client as unknown as Partial<BoundedClient>).endTransactionBound?.());
    super({ adapter: new PrismaPg(pool, { schema: schemaOf(url), disposeExternalPool: true }) });
  }
}
