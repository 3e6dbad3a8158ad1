import type { MessageState } from '@seqline/persistence';
import { decide } from './command-decider.js';

const limits = { deltaChars: 10, messageChars: 20 };
const now = new Date('2026-01-01T00:00:00Z');
const streaming: MessageState = {
  id: 'm',
  author: { role: 'agent', id: 'bot' },
  status: 'streaming',
  text: 'abc',
  parts: 2,
  createdAt: now.toISOString(),
  updatedAt: now.toISOString(),
  cursor: 'e-3',
  createdSeq: 3,
  appliedSeq: 9,
};
const state = (message: Partial<MessageState> = {}) => new Map([['m', { ...streaming, ...message }]]);

describe('decide', () => {
  it('writes the next part with an idempotency key naming the part', () => {
    expect(decide('c', state(), { type: 'message.append', messageId: 'm', part: 3, delta: 'd' }, limits, now)).toEqual({
      kind: 'write',
      msgId: 'c.m.part.3',
      event: { type: 'message.appended', messageId: 'm', part: 3, delta: 'd', at: now.toISOString() },
    });
  });

  it('treats a part already applied, or a repeated start or end, as a duplicate', () => {
    expect(decide('c', state(), { type: 'message.append', messageId: 'm', part: 2, delta: 'x' }, limits, now)).toEqual({ kind: 'duplicate', seq: 9 });
    expect(decide('c', state(), { type: 'message.start', messageId: 'm', agentId: 'bot', text: '' }, limits, now)).toEqual({ kind: 'duplicate', seq: 3 });
    expect(decide('c', state({ status: 'complete' }), { type: 'message.complete', messageId: 'm' }, limits, now)).toEqual({ kind: 'duplicate', seq: 9 });
    expect(decide('c', state({ status: 'aborted' }), { type: 'message.cancel', messageId: 'm', reason: 'r' }, limits, now)).toEqual({ kind: 'duplicate', seq: 9 });
  });

  it.each([
    [{ type: 'message.append', messageId: 'zz', part: 1, delta: 'x' }, {}, 'UNKNOWN_MESSAGE'],
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

  it('writes a posted prompt as a complete message', () => {
    expect(decide('c', new Map(), { type: 'message.post', messageId: 'q', author: { role: 'user', id: 'u' }, text: 'hi' }, limits, now)).toMatchObject({
      kind: 'write',
      msgId: 'c.q.created',
      event: { type: 'message.created', status: 'complete', text: 'hi', author: { role: 'user', id: 'u' } },
    });
  });
});
