import { jest } from '@jest/globals';
import type { MessageRepository } from '@seqline/persistence';
import { UndecodableEventError, type ConversationLog, type LogStream } from '@seqline/streams';
import { CursorResolver } from './cursor-resolver.js';

/** An instance that knows the log as epoch `known`, while the log itself is now `actual` (recreated, or not). */
function resolver(
  known: string,
  actual: string,
  log: { next?: unknown; subjectAt?: string | null; last?: number; watermark?: { epoch: string | null; seq: number }; watermarks?: () => Promise<never> },
  readMs = 0,
) {
  let refreshes = 0;
  const stream = {
    epoch: known,
    subjects: { log: (id: string) => `p.log.${id}` },
    bounds: async () => ({ first: 1, last: log.last ?? 0 }),
    async refresh(): Promise<boolean> {
      refreshes++;
      if (readMs > 0) await new Promise((resolve) => setTimeout(resolve, readMs));
      const changed = stream.epoch !== actual;
      stream.epoch = actual;
      return changed;
    },
    async confirms(epoch: string): Promise<boolean> {
      return !(await stream.refresh()) && stream.epoch === epoch;
    },
  };
  const conversationLog = { next: async () => log.next, subjectAt: async () => log.subjectAt ?? null };
  const messages = { watermarkOf: log.watermarks ?? (async () => log.watermark) };
  const cursors = new CursorResolver(conversationLog as unknown as ConversationLog, stream as unknown as LogStream, messages as unknown as MessageRepository);
  return { cursors, refreshes: () => refreshes };
}

describe('CursorResolver on an instance that has not seen the log recreated yet', () => {
  it('resumes a cursor of the new log after reading the epoch again, rather than reloading from the old one', async () => {
    const { cursors, refreshes } = resolver('k0', 'k1', { next: { seq: 6, prev: 5 } });
    expect(await cursors.resolve('c', 'k1-5')).toEqual({ kind: 'resume', seq: 5, next: 6 });
    expect(refreshes()).toBe(1);
  });

  it('reloads an old log\'s cursor that the new log does not fit, rather than refusing it BAD_CURSOR', async () => {
    expect(await resolver('k0', 'k1', { last: 10 }).cursors.resolve('c', 'k0-50')).toEqual({ kind: 'reload', reason: 'other-epoch' });
    expect(await resolver('k0', 'k1', { subjectAt: 'p.log.other' }).cursors.resolve('c', 'k0-5')).toEqual({ kind: 'reload', reason: 'other-epoch' });
  });

  it('still refuses BAD_CURSOR once the log is confirmed the same, and reads no epoch for an older cursor', async () => {
    await expect(resolver('k0', 'k0', { last: 10 }).cursors.resolve('c', 'k0-50')).rejects.toMatchObject({ code: 'BAD_CURSOR', message: 'cursor k0-50 is ahead of the log' });
    await expect(resolver('k0', 'k0', { subjectAt: 'p.log.other' }).cursors.resolve('c', 'k0-5')).rejects.toMatchObject({ code: 'BAD_CURSOR', message: 'cursor k0-5 does not belong to conversation c' });
    const older = resolver('k1', 'k1', {});
    expect(await older.cursors.resolve('c', 'k0-5')).toEqual({ kind: 'reload', reason: 'other-epoch' });
    expect(older.refreshes()).toBe(0);
  });

  it('judges every cursor that comes while the epoch is being read on what the read finds: none refused BAD_CURSOR for the old epoch', async () => {
    const { cursors, refreshes } = resolver('k0', 'k1', { last: 3 }, 50);
    // Two devices of the old log come back together, both ahead of the new, shorter log.
    expect(await Promise.all([cursors.resolve('c', 'k0-500'), cursors.resolve('c', 'k0-500')])).toEqual([
      { kind: 'reload', reason: 'other-epoch' },
      { kind: 'reload', reason: 'other-epoch' },
    ]);
    expect(refreshes()).toBe(1);
  });

  it('reads the epoch at most once in a while for refused cursors, and never for one of a log from the future', async () => {
    const same = resolver('k0', 'k0', { last: 10 });
    await expect(same.cursors.resolve('c', 'k0-50')).rejects.toMatchObject({ code: 'BAD_CURSOR' });
    await expect(same.cursors.resolve('c', 'k0-51')).rejects.toMatchObject({ code: 'BAD_CURSOR' });
    expect(same.refreshes()).toBe(1);
    const future = resolver('k0', 'k0', {});
    expect(await future.cursors.resolve('c', `${(Date.now() + 3_600_000).toString(36)}-1`)).toEqual({ kind: 'reload', reason: 'other-epoch' });
    expect(future.refreshes()).toBe(0);
  });
});

describe('CursorResolver when the event after the cursor cannot be decoded', () => {
  function withUndecodableNext(subjectAt: string | null) {
    let looked = 0;
    const stream = { epoch: 'k0', subjects: { log: (id: string) => `p.log.${id}` } };
    const log = {
      next: async () => {
        throw new UndecodableEventError('log event 6 of c is not JSON', 6);
      },
      subjectAt: async (seq: number) => {
        looked++;
        // The log answers no message for sequence 0 with an error, not with null.
        if (seq === 0) throw new Error('bad request');
        return subjectAt;
      },
    };
    return { cursors: new CursorResolver(log as unknown as ConversationLog, stream as unknown as LogStream, {} as MessageRepository), looked: () => looked };
  }

  it('lets a read that leaves such events out go on from a cursor of this conversation, and from <epoch>-0 without a lookup', async () => {
    expect(await withUndecodableNext('p.log.c').cursors.resolve('c', 'k0-5')).toEqual({ kind: 'reload', reason: 'undecodable-next', seq: 5 });
    const empty = withUndecodableNext(null);
    expect(await empty.cursors.resolve('c', 'k0-0')).toEqual({ kind: 'reload', reason: 'undecodable-next', seq: 0 });
    expect(empty.looked()).toBe(0);
    // A cursor the log no longer holds (or of another conversation) gives no such way on.
    expect(await withUndecodableNext(null).cursors.resolve('c', 'k0-5')).toEqual({ kind: 'reload', reason: 'expired' });
  });
});

describe('CursorResolver for a conversation idle past the log\'s retention', () => {
  it('resumes at the head from its last event, which expired, when Postgres says nothing came after it; reloads otherwise', async () => {
    // Nothing after the cursor in the log, and its own event gone (expired).
    const idle = { next: undefined, subjectAt: null, last: 900 };
    expect(await resolver('k0', 'k0', { ...idle, watermark: { epoch: 'k0', seq: 5 } }).cursors.resolve('c', 'k0-5')).toEqual({ kind: 'resume', seq: 5, atHead: true });
    // Postgres holds events after it (expired from the log since): the device missed them.
    expect(await resolver('k0', 'k0', { ...idle, watermark: { epoch: 'k0', seq: 7 } }).cursors.resolve('c', 'k0-5')).toEqual({ kind: 'reload', reason: 'expired' });
    // A watermark of an older log says nothing of this one.
    expect(await resolver('k0', 'k0', { ...idle, watermark: { epoch: 'kz', seq: 5 } }).cursors.resolve('c', 'k0-5')).toEqual({ kind: 'reload', reason: 'expired' });
    expect(await resolver('k0', 'k0', idle).cursors.resolve('c', 'k0-5')).toEqual({ kind: 'reload', reason: 'expired' });
  });
});

describe('CursorResolver when Postgres fails or does not answer', () => {
  const unavailable = { code: 'UNAVAILABLE', message: 'the database cannot be reached to check this conversation; retry shortly' };

  it('answers UNAVAILABLE for a cursor whose event expired with nothing after it, rather than calling it expired', async () => {
    const failing = resolver('k0', 'k0', { last: 10, watermarks: () => Promise.reject(new Error('Connection terminated unexpectedly')) });
    await expect(failing.cursors.resolve('c', 'k0-5')).rejects.toMatchObject(unavailable);
  });

  it('gives up a Postgres read that never answers (a network cut) after 10 s, for an expired cursor and for <epoch>-0 on an empty log', async () => {
    jest.useFakeTimers();
    try {
      const hung = resolver('k0', 'k0', { last: 10, watermarks: () => new Promise<never>(() => undefined) });
      for (const cursor of ['k0-5', 'k0-0']) {
        const resolved = hung.cursors.resolve('c', cursor);
        const settled = expect(resolved).rejects.toMatchObject(unavailable);
        await jest.advanceTimersByTimeAsync(10_000);
        await settled;
      }
    } finally {
      jest.useRealTimers();
    }
  });
});
