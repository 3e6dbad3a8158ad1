import type { ConversationState } from '@seqline/persistence';
import type { MessageState } from '@seqline/persistence';
import { partitionOf } from '@seqline/protocol';
import { ConversationStateCache, stateBytes } from './conversation-state-cache.js';

function state(conversationId: string, text: string, blocks?: MessageState['blocks'], extra: Partial<MessageState> = {}): ConversationState {
  const message = { id: 'm', text, partLengths: [], ...(blocks ? { blocks } : {}), ...extra } as MessageState;
  return { conversationId, seq: 1, messages: new Map([['m', message]]) };
}

describe('ConversationStateCache', () => {
  it('counts two bytes a character, text blocks twice over, plus a fixed overhead', () => {
    expect(stateBytes(state('a', 'x'.repeat(100)))).toBe(256 + 256 + 200);
    expect(stateBytes(state('a', 'x'.repeat(100), [{ type: 'text', id: 't', text: 'x'.repeat(100) }]))).toBe(256 + 256 + 400);
    expect(stateBytes(state('a', '', [{ type: 'reasoning', id: 'r', text: 'y'.repeat(50) }]))).toBe(256 + 256 + 100);
  });

  it('counts each part\'s length and each producer taken over from: an answer sent a character a part holds more of those than of text', () => {
    const text = 'x'.repeat(1_000);
    expect(stateBytes(state('a', text, undefined, { partLengths: Array.from({ length: 1_000 }, () => 1), formerProducers: ['p1', 'p2'] }))).toBe(256 + 256 + 2_000 + 8_000 + 2 * 128);
  });

  it('drops the least recently used state past the count', () => {
    const cache = new ConversationStateCache(2, Number.MAX_SAFE_INTEGER);
    cache.set('a', state('a', ''));
    cache.set('b', state('b', ''));
    cache.get('a');
    cache.set('c', state('c', ''));
    expect([cache.get('a') !== undefined, cache.get('b') !== undefined, cache.get('c') !== undefined]).toEqual([true, false, true]);
  });

  it('drops the least recently used states past the bytes, never the one in use', () => {
    const one = stateBytes(state('a', 'x'.repeat(1_000)));
    const cache = new ConversationStateCache(100, 2 * one);
    cache.set('a', state('a', 'x'.repeat(1_000)));
    cache.set('b', state('b', 'x'.repeat(1_000)));
    expect(cache.size).toBe(2);
    // `b` grows by an append: `a`, least recently used, goes.
    cache.grew('b', 10);
    expect([cache.get('a'), cache.size, cache.bytes]).toEqual([undefined, 1, one + 10]);
    // A state larger than the whole budget stays while it is the one in use.
    cache.set('big', state('big', 'x'.repeat(10_000)));
    expect([cache.get('b'), cache.get('big') !== undefined, cache.size]).toEqual([undefined, true, 1]);
  });

  it('recounts a state changed in place, and forgets a partition', () => {
    const cache = new ConversationStateCache(100, Number.MAX_SAFE_INTEGER);
    const a = state('a', 'x');
    cache.set('a', a);
    a.messages.get('m')!.text = 'x'.repeat(501);
    cache.recount('a');
    expect(cache.bytes).toBe(stateBytes(a));
    const ids = ['a', 'b', 'c', 'd', 'e', 'f'];
    for (const id of ids.slice(1)) cache.set(id, state(id, ''));
    cache.dropPartition(partitionOf('c'));
    expect(ids.filter((id) => cache.get(id) !== undefined)).toEqual(ids.filter((id) => partitionOf(id) !== partitionOf('c')));
    cache.clear();
    expect([cache.size, cache.bytes]).toEqual([0, 0]);
  });
});
