import { applyEntry, type ConversationState, type MessageRepository } from '@seqline/persistence';
import type { ConversationLog, LogEntry, LogStream } from '@seqline/streams';
import { SnapshotService } from './snapshot.service.js';

const at = '2026-01-01T00:00:00.000Z';
const created = (seq: number, prev: number, messageId: string, text: string): LogEntry => ({
  conversationId: 'c',
  seq,
  prev,
  time: new Date(at),
  event: { type: 'message.created', messageId, author: { role: 'user', id: 'u' }, status: 'complete', text, at },
});

describe('SnapshotService.catchUp', () => {
  it('steps over an event that forks the conversation (a second one after the same predecessor), as the persister does, and follows the chain on from it', async () => {
    const log: LogEntry[] = [
      created(2, 1, 'two', 'two'),
      // Stored beside `two` by a second writer on an old replicated NATS: Postgres records it as a hole.
      created(3, 1, 'twin', 'twin'),
      created(4, 3, 'three', 'three'),
    ];
    const conversationLog = {
      next: async (_id: string, from: number) => log.find((entry) => entry.seq >= from) ?? null,
      read: async () => [],
    };
    const snapshots = new SnapshotService({} as MessageRepository, conversationLog as unknown as ConversationLog, { epoch: 'e1' } as LogStream);
    const state: ConversationState = { conversationId: 'c', seq: 0, messages: new Map() };
    applyEntry(state, created(1, 0, 'one', 'one'), 'e1');

    await snapshots.catchUp(state);

    expect([...state.messages.keys()]).toEqual(['one', 'two', 'three']);
    expect(state.seq).toBe(4);
  });
});
