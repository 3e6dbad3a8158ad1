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

  it('counts an undecodable event read with the others in its place: an event after it naming the one before forks', async () => {
    // Eight events by direct gets, then one read of the rest, the undecodable event 11 among it;
    // the writer went on from the log's last event, the fork.
    const direct = Array.from({ length: 8 }, (_, i) => created(i + 2, i + 1, `m${i + 2}`, 'x'));
    const conversationLog = {
      next: async (_id: string, from: number) => direct.find((entry) => entry.seq >= from) ?? null,
      read: async (_id: string, _after: number, _limit: number, onUndecodable: (seq: number) => void) => {
        onUndecodable(11);
        return [created(10, 9, 'ten', 'ten'), created(12, 10, 'fork', 'fork'), created(13, 12, 'after', 'after')];
      },
    };
    const snapshots = new SnapshotService({} as MessageRepository, conversationLog as unknown as ConversationLog, { epoch: 'e1' } as LogStream);
    const state: ConversationState = { conversationId: 'c', seq: 0, messages: new Map() };
    applyEntry(state, created(1, 0, 'one', 'one'), 'e1');

    await snapshots.catchUp(state);

    expect([...state.messages.keys()].slice(-2)).toEqual(['ten', 'after']);
    expect(state.seq).toBe(13);
  });
});
