import pg from 'pg';
import { createConversation, http, useSeqline } from '@seqline/testing';

/** A statement Postgres holds up (a lock an operator's migration or a long transaction keeps) ends, and frees its connection. */
describe('Postgres statement timeout', () => {
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
});
