import pg from 'pg';
import { createConversation, eventually, http, useSeqline } from '@seqline/testing';

/** Statements Postgres holds up (a lock an operator's migration or a long transaction keeps) or ends: the service answers as for a passing fault, and frees its connections. */
describe('Postgres holding up or ending statements', () => {
  const seqline = useSeqline({ DATABASE_STATEMENT_TIMEOUT: '1s' });
  const url = () => seqline.server.url;

  it('answers a read held up by a lock 503 UNAVAILABLE once DATABASE_STATEMENT_TIMEOUT passes, and reads again once the lock goes', async () => {
    await createConversation(url(), 'locked');
    const locker = new pg.Client({ connectionString: seqline.settings.database.url });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE conversations IN ACCESS EXCLUSIVE MODE');
      // More reads than the pool has connections: each one held up for good would leave none for the next.
      const reads = await Promise.all(Array.from({ length: 30 }, () => http(url(), 'GET', '/v1/conversations/locked')));
      for (const read of reads) {
        expect(read).toEqual({ status: 503, body: { code: 'UNAVAILABLE', message: 'Postgres did not finish a statement within DATABASE_STATEMENT_TIMEOUT; retry shortly' } });
      }
      await locker.query('ROLLBACK');
      expect(await http(url(), 'GET', '/v1/conversations/locked')).toEqual({ status: 200, body: expect.objectContaining({ id: 'locked' }) });
    } finally {
      await locker.end();
    }
  });

  it('ends on the server a transaction left idle (its next statement lost with its connection) 5 s after the statement timeout, so it holds no locks for hours', async () => {
    const [setting] = await seqline.server.infra.prisma.$queryRaw<{ idle_in_transaction_session_timeout: string }[]>`SHOW idle_in_transaction_session_timeout`;
    expect(setting).toEqual({ idle_in_transaction_session_timeout: '6s' });
  });

  it('lets archiving a conversation of another log epoch wait for a lock longer than DATABASE_STATEMENT_TIMEOUT, where a cut-short archive would be tried again for good', async () => {
    const { url, infra } = seqline.server;
    await createConversation(url, 'archived');
    expect((await http(url, 'POST', '/v1/conversations/archived/messages', { messageId: 'q1', text: 'kept', authorId: 'u' })).status).toBe(202);
    await eventually(async () => (await http<{ items: unknown[] }>(url, 'GET', '/v1/conversations/archived/messages')).body.items.length === 1, 10_000, 'the message persisted');
    const locker = new pg.Client({ connectionString: seqline.settings.database.url });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE archived_messages IN ACCESS EXCLUSIVE MODE');
      const archiving = infra.messages.archiveOtherEpochs(['archived'], `${infra.stream.epoch}-next`, { newer: true });
      // Held up by the lock for longer than the statement timeout, counted from when it waits (a loaded machine may take a while to get there).
      const observer = new pg.Client({ connectionString: seqline.settings.database.url });
      await observer.connect();
      try {
        await eventually(
          async () =>
            (await observer.query("SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO archived_messages%'")).rowCount! > 0,
          10_000,
          'the archive waiting for the lock',
        );
      } finally {
        await observer.end();
      }
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      await locker.query('ROLLBACK');
      expect(await archiving).toEqual(['archived']);
      const archived = await locker.query<{ id: string; text: string }>("SELECT id, text FROM archived_messages WHERE conversation_id = 'archived'");
      expect(archived.rows).toEqual([{ id: 'q1', text: 'kept' }]);
    } finally {
      await locker.end();
    }
  });
});

/** With the statement timeout well above how long the test takes to find and end the read. */
describe('Postgres ending a statement', () => {
  const seqline = useSeqline();
  const url = () => seqline.server.url;

  it('answers a read whose statement Postgres ended (a restart, a failover, pg_terminate_backend) 503 UNAVAILABLE, not 500', async () => {
    await createConversation(url(), 'terminated');
    const locker = new pg.Client({ connectionString: seqline.settings.database.url });
    // Outside the lock's transaction, whose reads of the server's activity would all see its first.
    const observer = new pg.Client({ connectionString: seqline.settings.database.url });
    await locker.connect();
    await observer.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE conversations IN ACCESS EXCLUSIVE MODE');
      const read = http(url(), 'GET', '/v1/conversations/terminated');
      // The read itself (Prisma's query for one conversation by id), not a sweep of the service's waiting on the same lock.
      const waiting = async () =>
        (
          await observer.query<{ pid: number }>(
            `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid() AND query LIKE '%"conversations"."id" = $1%'`,
          )
        ).rows;
      await eventually(async () => (await waiting()).length > 0, 5_000, 'the read waiting for the lock');
      for (const { pid } of await waiting()) await observer.query('SELECT pg_terminate_backend($1)', [pid]);
      expect(await read).toEqual({ status: 503, body: { code: 'UNAVAILABLE', message: 'Postgres is unavailable; retry shortly' } });
      await locker.query('ROLLBACK');
      expect(await http(url(), 'GET', '/v1/conversations/terminated')).toEqual({ status: 200, body: expect.objectContaining({ id: 'terminated' }) });
    } finally {
      await locker.end();
      await observer.end();
    }
  });
});
