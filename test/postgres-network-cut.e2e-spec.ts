import pg from 'pg';
import { createConversation, eventually, http, useSeqlineBehindPostgresProxy } from '@seqline/testing';

/**
 * Postgres reached through a network that stops carrying the connections open now, while new
 * ones go through (a failover that moved the database, a route that changed): the service gives
 * those connections up and works again over new ones, rather than waiting for TCP to give up.
 */
describe('Postgres connections the network stops carrying', () => {
  const { seqline, proxy, directDatabaseUrl } = useSeqlineBehindPostgresProxy({ DATABASE_STATEMENT_TIMEOUT: '1s' });

  it('serves reads and persists again over new connections once the stuck ones are given up, though every pooled one was stuck', async () => {
    const { url } = seqline.server;
    await createConversation(url, 'cut');
    // Every connection of the pool open and idle: 30 reads held up together by a lock (taken directly, not through the proxy).
    const locker = new pg.Client({ connectionString: directDatabaseUrl() });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE conversations IN ACCESS EXCLUSIVE MODE');
      const held = Promise.all(Array.from({ length: 30 }, () => http(url, 'GET', '/v1/conversations/cut')));
      await new Promise((resolve) => setTimeout(resolve, 500));
      await locker.query('ROLLBACK');
      await held;
    } finally {
      await locker.end();
    }
    // The network stops carrying those connections; new ones go through.
    proxy().freeze();
    const during = await Promise.all(Array.from({ length: 30 }, () => http(url, 'GET', '/v1/conversations/cut')));
    // Those on the stuck connections fail as unavailable (retryable); none fails otherwise.
    expect(during.filter((read) => read.status === 503).length).toBeGreaterThan(0);
    expect(during.every((read) => read.status === 503 || read.status === 200)).toBe(true);
    await eventually(async () => (await http(url, 'GET', '/v1/conversations/cut')).status === 200, 20_000, 'a read served over a new connection');
    expect((await http(url, 'POST', '/v1/conversations/cut/messages', { messageId: 'after-cut', text: 'persisted', authorId: 'u' })).status).toBe(202);
    await eventually(
      async () => (await http<{ items: { id: string }[] }>(url, 'GET', '/v1/conversations/cut/messages')).body.items.some((item) => item.id === 'after-cut'),
      20_000,
      'the message persisted',
    );
  }, 90_000);
});
