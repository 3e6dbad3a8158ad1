import pg from 'pg';

export interface BoundedClientConfig extends pg.ClientConfig {
  /** How long a query may wait for its answer before the connection is given up: the statement timeout and a margin. */
  queryBoundMs?: number;
}

/** How much longer than its statement timeout a query may wait: Postgres's own end of it comes first. */
export const QUERY_BOUND_MARGIN_MS = 5_000;
const SET_LOCAL_TIMEOUT = /^SET LOCAL statement_timeout = (\d+)$/;

/**
 * A `pg` client that gives up its connection when a query has no answer within `queryBoundMs`.
 *
 * Postgres's `statement_timeout` ends a statement that runs long, but it runs on the server: a
 * connection whose server is gone without a word (a failover that moved the database to another
 * address, a network that drops every packet) keeps its query waiting until TCP gives up, a
 * quarter of an hour. Each such connection stays taken from the pool meanwhile, and once all are,
 * nothing Postgres-backed runs, though Postgres is back. Cut off, the query fails as a connection
 * lost (unavailable, retried), and the pool, which drops a client that cannot take queries when
 * it comes back (in a transaction too), opens a new connection in its place.
 */
export class BoundedClient extends pg.Client {
  private readonly queryBoundMs?: number;
  /** A transaction's own statement timeout (`SET LOCAL`), until the client goes back to the pool. */
  private transactionBoundMs?: number;

  constructor(config: BoundedClientConfig) {
    super(config);
    this.queryBoundMs = config.queryBoundMs;
  }

  /** The pool calls this when the client comes back: a `SET LOCAL` lasted only its transaction. */
  endTransactionBound(): void {
    this.transactionBoundMs = undefined;
  }

  // pg's overloads (callback, promise, submittable) are passed through as they are.
  override query(...args: unknown[]): never {
    const text = typeof args[0] === 'string' ? args[0] : (args[0] as { text?: unknown } | undefined)?.text;
    const local = typeof text === 'string' ? SET_LOCAL_TIMEOUT.exec(text) : null;
    if (local) this.transactionBoundMs = Number(local[1]) + QUERY_BOUND_MARGIN_MS;
    const bound = this.transactionBoundMs ?? this.queryBoundMs;
    const call = (): never => (super.query as (...a: unknown[]) => never)(...args);
    if (bound === undefined) return call();
    let timer: NodeJS.Timeout | undefined;
    const arm = (): void => {
      timer = setTimeout(() => this.cutOff(), bound);
      timer.unref();
    };
    const last = args.length - 1;
    const callback = args[last];
    if (typeof callback === 'function') {
      args[last] = (...result: unknown[]) => {
        clearTimeout(timer);
        (callback as (...r: unknown[]) => void)(...result);
      };
      arm();
      return call();
    }
    const result = call() as unknown;
    if (result instanceof Promise) {
      arm();
      result.then(
        () => clearTimeout(timer),
        () => clearTimeout(timer),
      );
    }
    return result as never;
  }

  /** Ends the connection under the query: it fails as a lost connection, and the client takes no more. */
  private cutOff(): void {
    (this as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
  }
}
