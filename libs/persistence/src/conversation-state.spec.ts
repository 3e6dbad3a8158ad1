import type { LogEntry } from '@seqline/streams';
import { applyEntry, MAX_FORMER_PRODUCERS, type ConversationState } from './conversation-state.js';

const at = '2026-01-01T00:00:00.000Z';
const entry = (seq: number, event: LogEntry['event']): LogEntry => ({ conversationId: 'c', seq, prev: seq - 1, event, time: new Date(at) });

describe('applyEntry', () => {
  it('remembers the producers an answer was taken over from, each once, the last MAX_FORMER_PRODUCERS of them', () => {
    const state: ConversationState = { conversationId: 'c', seq: 0, messages: new Map() };
    applyEntry(state, entry(1, { type: 'message.created', messageId: 'm', author: { role: 'agent', id: 'bot' }, status: 'streaming', text: '', producerId: 'p0', at }), 'e');
    expect(state.messages.get('m')?.formerProducers).toBeUndefined();
    const producers = Array.from({ length: MAX_FORMER_PRODUCERS + 3 }, (_, i) => `p${i + 1}`);
    producers.forEach((producerId, i) => applyEntry(state, entry(i + 2, { type: 'message.claimed', messageId: 'm', producerId, epoch: i + 2, at }), 'e'));
    const message = state.messages.get('m')!;
    expect(message).toMatchObject({ producerId: producers.at(-1), producerEpoch: MAX_FORMER_PRODUCERS + 4 });
    expect(message.formerProducers).toEqual(['p0', ...producers.slice(0, -1)].slice(-MAX_FORMER_PRODUCERS));
  });

  it('does not count an answer whose producer named none as taken over from anyone', () => {
    const state: ConversationState = { conversationId: 'c', seq: 0, messages: new Map() };
    applyEntry(state, entry(1, { type: 'message.created', messageId: 'm', author: { role: 'agent', id: 'bot' }, status: 'streaming', text: '', at }), 'e');
    applyEntry(state, entry(2, { type: 'message.claimed', messageId: 'm', producerId: 'p1', epoch: 2, at }), 'e');
    expect(state.messages.get('m')).toMatchObject({ producerId: 'p1', producerEpoch: 2 });
    expect(state.messages.get('m')?.formerProducers).toBeUndefined();
  });

  it('counts an append to a block of a type from a newer version, so the parts after it still apply', () => {
    const state: ConversationState = { conversationId: 'c', seq: 0, messages: new Map() };
    const append = (seq: number, part: number, delta: string, block?: unknown) =>
      entry(seq, { type: 'message.appended', messageId: 'm', part, delta, ...(block ? { block: block as never } : {}), at });
    applyEntry(state, entry(1, { type: 'message.created', messageId: 'm', author: { role: 'agent', id: 'bot' }, status: 'streaming', text: '', at }), 'e');
    applyEntry(state, append(2, 1, 'Hello'), 'e');
    applyEntry(state, append(3, 2, '{"bars":[1]}', { type: 'chart', id: 'c1' }), 'e');
    applyEntry(state, append(4, 3, ' world'), 'e');
    expect(state.messages.get('m')).toMatchObject({ text: 'Hello world', parts: 3, partLengths: [5, 0, 6], appliedSeq: 4 });
  });
});

