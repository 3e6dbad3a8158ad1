import type { ConversationRepository, MessageRepository } from '@seqline/persistence';
import type { ConversationLog, LogEntry, LogStream } from '@seqline/streams';
import type { ConversationCommands } from '../ingest/conversation-commands.service.js';
import { CursorResolver } from '../delivery/cursor-resolver.js';
import { ConversationsService } from './conversations.service.js';

/** The service on an instance that knows the log as `known` while it is `actual` now; `read` runs during a log read. */
function service(known: string, actual: string, during: { read?: () => void; next?: () => void } = {}) {
  const stream = {
    epoch: known,
    subjects: { log: (id: string) => `p.log.${id}` },
    bounds: async () => ({ first: 1, last: 10 }),
    async refresh(): Promise<boolean> {
      const changed = stream.epoch !== actual;
      stream.epoch = actual;
      return changed;
    },
  };
  const pages: { after: number; epoch: string }[] = [];
  const messages = { page: async (_id: string, after: number, _limit: number, epoch: string) => (pages.push({ after, epoch }), { messages: [], more: false }) } as unknown as MessageRepository;
  const conversations = { get: async (id: string) => ({ id, title: null, createdAt: '', updatedAt: '' }) } as unknown as ConversationRepository;
  const entry: LogEntry = { conversationId: 'c', seq: 6, prev: 5, event: { type: 'message.created', messageId: 'm', author: { role: 'user', id: 'u' }, status: 'complete', text: 'hi', at: '2026-12-06T00:00:00.000Z' }, time: new Date(0) } as unknown as LogEntry;
  const log = {
    next: async () => {
      during.next?.();
      return entry;
    },
    subjectAt: async () => 'p.log.c',
    read: async () => {
      during.read?.();
      return [entry];
    },
  } as unknown as ConversationLog;
  const cursors = new CursorResolver(log, stream as unknown as LogStream, messages);
  return { rest: new ConversationsService(conversations, messages, log, stream as unknown as LogStream, {} as ConversationCommands, cursors), pages, stream };
}

describe('ConversationsService and the log epoch', () => {
  it('pages history from a cursor of a log recreated since this instance last looked, instead of refusing it BAD_CURSOR', async () => {
    const { rest, pages } = service('k0', 'k1');
    expect(await rest.history('c', { after: 'k1-5', limit: 10 })).toEqual({ items: [], next: null });
    expect(pages).toEqual([{ after: 5, epoch: 'k1' }]);
  });

  it('answers CURSOR_EXPIRED when the log is recreated during an events read, rather than labelling the old log\'s events with the new epoch', async () => {
    const steady = service('k0', 'k0');
    await expect(steady.rest.events('c', { after: 'k0-5', limit: 10 })).resolves.toMatchObject({ items: [{ cursor: 'k0-6' }] });
    const held: { stream?: { epoch: string } } = {};
    const recreated = service('k0', 'k0', { read: () => (held.stream!.epoch = 'k1') });
    held.stream = recreated.stream;
    await expect(recreated.rest.events('c', { after: 'k0-5', limit: 10 })).rejects.toMatchObject({ code: 'CURSOR_EXPIRED' });
    // Recreated while the cursor was being judged: not read against the new log either.
    const judging = service('k0', 'k0', { next: () => (held.stream!.epoch = 'k1') });
    held.stream = judging.stream;
    await expect(judging.rest.events('c', { after: 'k0-5', limit: 10 })).rejects.toMatchObject({ code: 'CURSOR_EXPIRED' });
  });
});
