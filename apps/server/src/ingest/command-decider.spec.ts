import type { MessageState } from '@seqline/persistence';
import { MAX_BLOCKS_PER_MESSAGE } from '@seqline/protocol';
import { AnswerStillActive, decide } from './command-decider.js';

const limits = { deltaChars: 10, messageChars: 20 };
const now = new Date('2026-01-01T00:00:00Z');
const streaming: MessageState = {
  id: 'm',
  author: { role: 'agent', id: 'bot' },
  status: 'streaming',
  text: 'abc',
  parts: 2,
  partLengths: [1, 2],
  producerId: 'p1',
  producerEpoch: 1,
  createdAt: now.toISOString(),
  updatedAt: now.toISOString(),
  cursor: 'e-3',
  createdSeq: 3,
  appliedSeq: 9,
};
const state = (message: Partial<MessageState> = {}) => new Map([['m', { ...streaming, ...message }]]);

describe('decide', () => {
  it('writes the next part with an idempotency key naming the part and the producer epoch', () => {
    expect(decide('c', state(), { type: 'message.append', messageId: 'm', part: 3, delta: 'd' }, limits, now)).toEqual({
      kind: 'write',
      msgId: 'log:c.m.part.3.1',
      event: { type: 'message.appended', messageId: 'm', part: 3, delta: 'd', at: now.toISOString() },
    });
  });

  it('treats the same part with the same delta, or a repeated start or end, as a duplicate', () => {
    // The text is "a" (part 1) + "bc" (part 2).
    expect(decide('c', state(), { type: 'message.append', messageId: 'm', part: 1, delta: 'a' }, limits, now)).toEqual({ kind: 'duplicate', seq: 9 });
    expect(decide('c', state(), { type: 'message.append', messageId: 'm', part: 2, delta: 'bc' }, limits, now)).toEqual({ kind: 'duplicate', seq: 9 });
    expect(decide('c', state(), { type: 'message.start', messageId: 'm', agentId: 'bot', text: '', producerId: 'p1' }, limits, now)).toEqual({ kind: 'duplicate', seq: 3 });
    expect(decide('c', state({ status: 'complete' }), { type: 'message.complete', messageId: 'm' }, limits, now)).toEqual({ kind: 'duplicate', seq: 9 });
    expect(decide('c', state({ status: 'failed', error: 'e' }), { type: 'message.fail', messageId: 'm', error: 'e' }, limits, now)).toEqual({ kind: 'duplicate', seq: 9 });
    expect(decide('c', state({ status: 'aborted' }), { type: 'message.cancel', messageId: 'm', reason: 'r' }, limits, now)).toEqual({ kind: 'duplicate', seq: 9 });
  });

  it('answers a start on a finished answer with its state, without taking it over', () => {
    expect(decide('c', state({ status: 'complete' }), { type: 'message.start', messageId: 'm', agentId: 'bot', text: '', producerId: 'p2' }, limits, now)).toEqual({ kind: 'duplicate', seq: 3 });
  });

  it('lets another producer of the same agent take a streaming answer over, one epoch up', () => {
    expect(decide('c', state(), { type: 'message.start', messageId: 'm', agentId: 'bot', text: '', producerId: 'p2' }, limits, now)).toEqual({
      kind: 'write',
      msgId: 'log:c.m.claimed.2.p2',
      event: { type: 'message.claimed', messageId: 'm', producerId: 'p2', epoch: 2, at: now.toISOString() },
    });
  });

  it('refuses FENCED a start from a producer the answer was taken over from, and answers one on the finished answer with its state', () => {
    const start = { type: 'message.start', messageId: 'm', agentId: 'bot', text: '', producerId: 'p1' } as const;
    expect(() => decide('c', state({ producerEpoch: 3, producerId: 'p3', formerProducers: ['p1', 'p2'] }), start, limits, now)).toThrow(
      expect.objectContaining({ code: 'FENCED', message: 'message m was taken over from producer p1 (now epoch 3); it cannot take the answer back' }),
    );
    expect(decide('c', state({ status: 'complete', producerEpoch: 3, producerId: 'p3', formerProducers: ['p1', 'p2'] }), start, limits, now)).toEqual({ kind: 'duplicate', seq: 3 });
  });

  it('refuses FENCED a start naming no producer while one that names itself holds the answer, and repeats one on an answer whose producer named none', () => {
    const start = { type: 'message.start', messageId: 'm', agentId: 'bot', text: '' } as const;
    expect(() => decide('c', state({ producerEpoch: 2, producerId: 'p2' }), start, limits, now)).toThrow(
      expect.objectContaining({ code: 'FENCED', message: 'message m is written by another producer (epoch 2); a start without producerId cannot take it over' }),
    );
    expect(decide('c', state({ producerId: undefined }), start, limits, now)).toEqual({ kind: 'duplicate', seq: 3 });
    expect(decide('c', state({ status: 'complete' }), start, limits, now)).toEqual({ kind: 'duplicate', seq: 3 });
  });

  it('accepts the current epoch, and commands without one while the answer was never taken over', () => {
    expect(decide('c', state(), { type: 'message.complete', messageId: 'm' }, limits, now)).toMatchObject({ kind: 'write' });
    expect(decide('c', state(), { type: 'message.complete', messageId: 'm', epoch: 1 }, limits, now)).toMatchObject({ kind: 'write' });
    expect(decide('c', state({ producerEpoch: 2 }), { type: 'message.append', messageId: 'm', part: 3, delta: 'd', epoch: 2 }, limits, now)).toMatchObject({ kind: 'write' });
  });

  it.each([
    [{ type: 'message.append', messageId: 'zz', part: 1, delta: 'x' }, {}, 'UNKNOWN_MESSAGE'],
    [{ type: 'message.append', messageId: 'm', part: 1, delta: 'X' }, {}, 'PART_CONFLICT'],
    [{ type: 'message.append', messageId: 'm', part: 2, delta: 'b' }, {}, 'PART_CONFLICT'],
    [{ type: 'message.append', messageId: 'm', part: 2, delta: 'bcd' }, { status: 'complete' }, 'PART_CONFLICT'],
    [{ type: 'message.append', messageId: 'm', part: 3, delta: 'd', epoch: 1 }, { producerEpoch: 2 }, 'FENCED'],
    [{ type: 'message.append', messageId: 'm', part: 3, delta: 'd' }, { producerEpoch: 2 }, 'FENCED'],
    [{ type: 'message.append', messageId: 'm', part: 2, delta: 'bc', epoch: 1 }, { producerEpoch: 2 }, 'FENCED'],
    [{ type: 'message.complete', messageId: 'm', epoch: 1 }, { producerEpoch: 2, status: 'complete' }, 'FENCED'],
    [{ type: 'message.fail', messageId: 'm', error: 'x', epoch: 1 }, { producerEpoch: 2 }, 'FENCED'],
    [{ type: 'message.fail', messageId: 'm', error: 'other' }, { status: 'failed', error: 'e' }, 'MESSAGE_FINISHED'],
    [{ type: 'message.complete', messageId: 'm' }, { status: 'aborted' }, 'MESSAGE_FINISHED'],
    [{ type: 'message.append', messageId: 'm', part: 5, delta: 'x' }, {}, 'PART_OUT_OF_ORDER'],
    [{ type: 'message.append', messageId: 'm', part: 3, delta: 'x'.repeat(11) }, {}, 'DELTA_TOO_LARGE'],
    [{ type: 'message.append', messageId: 'm', part: 3, delta: 'x'.repeat(10) }, { text: 'y'.repeat(11) }, 'MESSAGE_TOO_LARGE'],
    [{ type: 'message.append', messageId: 'm', part: 3, delta: 'x' }, { status: 'complete' }, 'MESSAGE_FINISHED'],
    [{ type: 'message.complete', messageId: 'm' }, { status: 'failed' }, 'MESSAGE_FINISHED'],
    [{ type: 'message.cancel', messageId: 'm', reason: 'r' }, { status: 'complete' }, 'MESSAGE_FINISHED'],
    [{ type: 'message.start', messageId: 'm', agentId: 'other', text: '' }, {}, 'MESSAGE_EXISTS'],
    [{ type: 'message.post', messageId: 'new', author: { role: 'user', id: 'u' }, text: 'x'.repeat(21) }, {}, 'MESSAGE_TOO_LARGE'],
  ] as const)('refuses %j with %s', (command, message, code) => {
    expect(() => decide('c', state(message), command, limits, now)).toThrow(expect.objectContaining({ code }));
  });

  it('ends an abandoned answer only if its last event in the log is older than the silence bound', () => {
    const expire = (silentSince: string) => decide('c', state(), { type: 'message.expire', messageId: 'm', error: 'lease expired', silentSince }, limits, now);
    expect(expire('2026-01-01T00:00:01.000Z')).toMatchObject({ kind: 'write', event: { type: 'message.failed', error: 'lease expired' } });
    expect(() => expire('2026-01-01T00:00:00.000Z')).toThrow(AnswerStillActive);
    expect(() => expire('2025-12-31T23:59:59.000Z')).toThrow(AnswerStillActive);
  });

  it('repeats a post with the same text, and refuses one with other text under the same id (an edit is not a retry)', () => {
    const posted = new Map([['q', { ...streaming, id: 'q', author: { role: 'user' as const, id: 'u' }, status: 'complete' as const, text: 'hi', producerId: undefined }]]);
    const post = (text: string) => decide('c', posted, { type: 'message.post', messageId: 'q', author: { role: 'user', id: 'u' }, text }, limits, now);
    expect(post('hi')).toEqual({ kind: 'duplicate', seq: 3 });
    expect(() => post('hi, edited')).toThrow(expect.objectContaining({ code: 'MESSAGE_EXISTS', message: 'message q already exists with other text; post an edited message under a new id' }));
  });

  it('writes a posted prompt as a complete message', () => {
    expect(decide('c', new Map(), { type: 'message.post', messageId: 'q', author: { role: 'user', id: 'u' }, text: 'hi' }, limits, now)).toMatchObject({
      kind: 'write',
      msgId: 'log:c.q.created',
      event: { type: 'message.created', status: 'complete', text: 'hi', author: { role: 'user', id: 'u' } },
    });
  });

  describe('typed blocks', () => {
    // Part 1 "a" is plain text, part 2 went to a reasoning block, part 3 "bc" to text block t.
    const typed = state({
      text: 'abc',
      parts: 3,
      partLengths: [1, 0, 2],
      blocks: [
        { type: 'reasoning', id: 'r', text: 'hmm' },
        { type: 'text', id: 't', text: 'bc' },
      ],
    });

    it('writes the block with the event', () => {
      const block = { type: 'tool', id: 'c1', toolName: 'lookup' } as const;
      expect(decide('c', typed, { type: 'message.append', messageId: 'm', part: 4, delta: '{}', block }, limits, now)).toMatchObject({
        kind: 'write',
        event: { type: 'message.appended', part: 4, delta: '{}', block },
      });
    });

    it('still compares a repeated text part exactly, and acknowledges a repeated part of another block', () => {
      expect(decide('c', typed, { type: 'message.append', messageId: 'm', part: 3, delta: 'bc', block: { type: 'text', id: 't' } }, limits, now)).toEqual({ kind: 'duplicate', seq: 9 });
      expect(decide('c', typed, { type: 'message.append', messageId: 'm', part: 2, delta: 'hmm', block: { type: 'reasoning', id: 'r' } }, limits, now)).toEqual({ kind: 'duplicate', seq: 9 });
      expect(() => decide('c', typed, { type: 'message.append', messageId: 'm', part: 3, delta: 'XY', block: { type: 'text', id: 't' } }, limits, now)).toThrow(expect.objectContaining({ code: 'PART_CONFLICT' }));
    });

    it('refuses a block id reused with another type, and counts block characters toward the message limit', () => {
      expect(() => decide('c', typed, { type: 'message.append', messageId: 'm', part: 4, delta: 'x', block: { type: 'text', id: 'r' } }, limits, now)).toThrow(
        expect.objectContaining({ code: 'VALIDATION_FAILED' }),
      );
      // 3 characters of text and 3 of reasoning: 15 more pass the 20-character limit.
      expect(() => decide('c', typed, { type: 'message.append', messageId: 'm', part: 4, delta: 'x'.repeat(10), block: { type: 'reasoning', id: 'r' } }, { ...limits, messageChars: 15 }, now)).toThrow(
        expect.objectContaining({ code: 'MESSAGE_TOO_LARGE' }),
      );
    });

    it('counts a set-whole value by what it adds over the value it replaces', () => {
      // 3 characters of text, 3 of reasoning, a data value of 8 and a tool output of 4: 18 of 20.
      const full = state({ ...typed.get('m'), blocks: [...typed.get('m')!.blocks!, { type: 'data', id: 'd', name: 'weather', data: '{"t":21}' }, { type: 'tool', id: 'c1', toolName: 'lookup', input: '', output: '"ok"' }] });
      const wide = { deltaChars: 20, messageChars: 20 };
      const data = { type: 'data', id: 'd', name: 'weather' } as const;
      const output = { type: 'tool', id: 'c1', toolName: 'lookup', field: 'output' } as const;
      expect(decide('c', full, { type: 'message.append', messageId: 'm', part: 4, delta: '{"t":22.5}', block: data }, wide, now)).toMatchObject({ kind: 'write' });
      expect(decide('c', full, { type: 'message.append', messageId: 'm', part: 4, delta: '"done"', block: output }, wide, now)).toMatchObject({ kind: 'write' });
      expect(() => decide('c', full, { type: 'message.append', messageId: 'm', part: 4, delta: '{"t":22.55}', block: data }, wide, now)).toThrow(expect.objectContaining({ code: 'MESSAGE_TOO_LARGE' }));
      // A new data block adds its whole value.
      expect(() => decide('c', full, { type: 'message.append', messageId: 'm', part: 4, delta: 'abc', block: { type: 'data', id: 'e', name: 'weather' } }, wide, now)).toThrow(
        expect.objectContaining({ code: 'MESSAGE_TOO_LARGE' }),
      );
    });
  });
});

describe('decide bounding one message beyond its characters', () => {
  it('refuses a part past LIMIT_MESSAGE_CHARS parts: set-whole values add no characters, yet each part is kept', () => {
    const many = state({ parts: 20, partLengths: new Array(20).fill(0), blocks: [{ type: 'data', id: 'd', name: 'n', data: '1' }] });
    expect(() => decide('c', many, { type: 'message.append', messageId: 'm', part: 21, delta: '2', block: { type: 'data', id: 'd', name: 'n' } }, limits, now)).toThrow(
      expect.objectContaining({ code: 'MESSAGE_TOO_LARGE', message: 'message m would exceed 20 parts' }),
    );
  });

  it('refuses a part number no message can reach as too large, not as out of order (which would send the writer to the log for the parts before it)', () => {
    const one = state({ parts: 1, partLengths: [1] });
    expect(() => decide('c', one, { type: 'message.append', messageId: 'm', part: Number.MAX_SAFE_INTEGER, delta: 'x' }, limits, now)).toThrow(
      expect.objectContaining({ code: 'MESSAGE_TOO_LARGE', message: 'message m would exceed 20 parts' }),
    );
  });

  it('refuses a new block past MAX_BLOCKS_PER_MESSAGE, whose ids and names the character limit does not count, but not one more part of a block it has', () => {
    const blocks = Array.from({ length: MAX_BLOCKS_PER_MESSAGE }, (_, i) => ({ type: 'tool' as const, id: `call-${i}`, toolName: 'f', input: '' }));
    const full = state({ blocks });
    const wide = { deltaChars: 10, messageChars: 100_000 };
    expect(() => decide('c', full, { type: 'message.append', messageId: 'm', part: 3, delta: '{', block: { type: 'tool', id: 'call-new', toolName: 'f' } }, wide, now)).toThrow(
      expect.objectContaining({ code: 'MESSAGE_TOO_LARGE', message: `message m would exceed ${MAX_BLOCKS_PER_MESSAGE} blocks` }),
    );
    expect(decide('c', full, { type: 'message.append', messageId: 'm', part: 3, delta: '{', block: { type: 'tool', id: 'call-7', toolName: 'f' } }, wide, now)).toMatchObject({ kind: 'write' });
  });
});

