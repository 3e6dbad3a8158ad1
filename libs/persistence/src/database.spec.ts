import { DatabaseUnreachableError, isDatabaseUnavailable } from './database.js';

/** Shaped as Prisma 7 with the pg adapter reports a stopped Postgres (copied from a server log). */
const unreachable = Object.assign(new Error("Invalid `prisma.conversation.findMany()` invocation:\n\nCan't reach database server at 127.0.0.1:44423"), {
  name: 'PrismaClientKnownRequestError',
  code: 'P1001',
  meta: { modelName: 'Conversation', driverAdapterError: { name: 'DriverAdapterError', cause: { kind: 'DatabaseNotReachable', host: '127.0.0.1', port: 44423 } } },
});

describe('isDatabaseUnavailable', () => {
  it.each([
    ['Prisma cannot reach the server (P1001)', unreachable],
    ['a pool that timed out (P2024)', Object.assign(new Error('timed out fetching a connection'), { name: 'PrismaClientKnownRequestError', code: 'P2024' })],
    ['a transaction that could not start in time on a busy pool (P2028)', Object.assign(new Error('Transaction API error: Unable to start a transaction in the given time.'), { name: 'PrismaClientKnownRequestError', code: 'P2028' })],
    ['a raw query whose connection closed', Object.assign(new Error('closed'), { name: 'DriverAdapterError', cause: { kind: 'ConnectionClosed' } })],
    ['Postgres shutting down (57P01)', Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' })],
    [
      'Postgres ending a model query, as Prisma wraps it (P2039, 57P01)',
      Object.assign(new Error('Database error. Code: `57P01`'), {
        name: 'PrismaClientKnownRequestError',
        code: 'P2039',
        meta: { modelName: 'Conversation', driverAdapterError: { name: 'DriverAdapterError', cause: { originalCode: '57P01', kind: 'postgres', code: '57P01', severity: 'FATAL' } } },
      }),
    ],
    ['Postgres starting up, on a raw query (P2010, 57P03)', Object.assign(new Error('Raw query failed. Code: `57P03`'), { name: 'PrismaClientKnownRequestError', code: 'P2010', meta: { code: '57P03' } })],
    ['a statement past the statement timeout (57014)', Object.assign(new Error('canceling statement due to statement timeout'), { name: 'PrismaClientKnownRequestError', code: 'P2010', meta: { code: '57014' } })],
    ['a connection the network dropped mid-query', new Error('Connection terminated unexpectedly')],
    ['a refused socket', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })],
    ['a name that did not resolve for now, as Prisma passes it on', Object.assign(new Error('getaddrinfo EAI_AGAIN db.internal'), { name: 'PrismaClientKnownRequestError', code: 'EAI_AGAIN' })],
    ['a route that went', Object.assign(new Error('connect ENETUNREACH 10.0.0.5:5432'), { code: 'ENETUNREACH' })],
    ['the client failing to start', Object.assign(new Error('cannot connect'), { name: 'PrismaClientInitializationError' })],
    ['the start-up check', new DatabaseUnreachableError('Cannot reach Postgres')],
  ])('is true for %s', (_what, error) => {
    expect(isDatabaseUnavailable(error)).toBe(true);
  });

  it.each([
    ['a unique violation (P2002)', Object.assign(new Error('Unique constraint failed'), { name: 'PrismaClientKnownRequestError', code: 'P2002' })],
    ['a syntax error in SQL (42601)', Object.assign(new Error('syntax error'), { code: '42601' })],
    ['a unique violation wrapped by Prisma (P2010, 23505)', Object.assign(new Error('Raw query failed. Code: `23505`'), { name: 'PrismaClientKnownRequestError', code: 'P2010', meta: { code: '23505' } })],
    ['a transaction that ran past its timeout (P2028): the same work would again', Object.assign(new Error('Transaction API error: Transaction already closed: A query cannot be executed on an expired transaction.'), { name: 'PrismaClientKnownRequestError', code: 'P2028' })],
    ['a bug', new TypeError("Cannot read properties of undefined (reading 'id')")],
    ['a string', 'P1001'],
    ['nothing', undefined],
  ])('is false for %s', (_what, error) => {
    expect(isDatabaseUnavailable(error)).toBe(false);
  });
});
