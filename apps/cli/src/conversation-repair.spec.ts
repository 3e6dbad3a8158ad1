import type { ConversationState } from '@seqline/persistence';
import type { LogEvent } from '@seqline/protocol';
import type { LogEntry } from '@seqline/streams';
import { replayChain } from './conversation-repair.js';

const at = '2026-01-01T00:00:00.000Z';
const created = (messageId: string, text: string): LogEvent => ({ type: 'message.created', messageId, author: { role: 'user', id: 'u' }, status: 'complete', text, at });
const entry = (seq: number, prev: number, event: LogEvent): LogEntry => ({ conversationId: 'c', seq, prev, event, time: new Date(at) });
const empty = (): ConversationState => ({ conversationId: 'c', seq: 0, messages: new Map() });
const texts = (state: ConversationState) => [...state.messages.values()].map((message) => message.text);

describe('replayChain', () => {
  it('applies an unbroken chain and records no hole', () => {
    const state = empty();
    expect(replayChain(state, [entry(3, 0, created('a', 'one')), entry(7, 3, created('b', 'two'))], [], 'e')).toEqual({ holes: [], forks: [] });
    expect(texts(state)).toEqual(['one', 'two']);
    expect(state.seq).toBe(7);
  });

  it('steps over a second event after the same predecessor, as the persister does, and goes on from it', () => {
    const state = empty();
    const result = replayChain(state, [entry(3, 0, created('a', 'one')), entry(5, 3, created('b', 'two')), entry(6, 3, created('twin', 'twin')), entry(9, 6, created('c', 'three'))], [], 'e');
    expect(texts(state)).toEqual(['one', 'two', 'three']);
    expect(result).toEqual({ forks: [6], holes: [{ conversationId: 'c', epoch: 'e', afterSeq: 5, untilSeq: 6, reason: 'fork' }] });
    expect(state.seq).toBe(9);
  });

  it('records undecodable events as holes where they lie, the last one included', () => {
    const state = empty();
    const result = replayChain(state, [entry(3, 0, created('a', 'one')), entry(8, 4, created('b', 'two'))], [4, 10], 'e');
    expect(texts(state)).toEqual(['one', 'two']);
    expect(result.holes).toEqual([
      { conversationId: 'c', epoch: 'e', afterSeq: 3, untilSeq: 4, reason: 'undecodable' },
      { conversationId: 'c', epoch: 'e', afterSeq: 8, untilSeq: 10, reason: 'undecodable' },
    ]);
    expect(state.seq).toBe(10);
  });

  it('takes a log whose start expired as it is: its first event may name any earlier predecessor', () => {
    const state = empty();
    expect(replayChain(state, [entry(40, 31, created('a', 'late'))], [], 'e').holes).toEqual([]);
    expect(texts(state)).toEqual(['late']);
  });
});
