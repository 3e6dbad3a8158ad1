import type { Message } from '@seqline/protocol';
import { AnswerChunker } from './answer-chunks.js';

const base: Message = {
  id: 'a',
  author: { role: 'agent', id: 'bot' },
  status: 'streaming',
  text: '',
  parts: 0,
  createdAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:00:00.000Z',
  cursor: 'e-1',
};

describe('AnswerChunker', () => {
  it('emits only what changed since the last state, then the end', () => {
    const chunker = new AnswerChunker('a');
    expect(chunker.next({ ...base, blocks: [{ type: 'reasoning', id: 'r', text: 'Hm' }] })).toEqual([
      { type: 'start', messageId: 'a', messageMetadata: { status: 'streaming', authorId: 'bot' } },
      { type: 'reasoning-start', id: 'r' },
      { type: 'reasoning-delta', id: 'r', delta: 'Hm' },
    ]);
    const withTool: Message = {
      ...base,
      text: 'Hi',
      blocks: [
        { type: 'reasoning', id: 'r', text: 'Hm.' },
        { type: 'tool', id: 'c', toolName: 'lookup', input: '{"q":1}', output: '"x"' },
        { type: 'text', id: 't', text: 'Hi' },
      ],
    };
    expect(chunker.next(withTool)).toEqual([
      { type: 'reasoning-delta', id: 'r', delta: '.' },
      { type: 'tool-input-start', toolCallId: 'c', toolName: 'lookup' },
      { type: 'tool-input-delta', toolCallId: 'c', inputTextDelta: '{"q":1}' },
      { type: 'tool-input-available', toolCallId: 'c', toolName: 'lookup', input: { q: 1 } },
      { type: 'tool-output-available', toolCallId: 'c', output: 'x' },
      { type: 'text-start', id: 't' },
      { type: 'text-delta', id: 't', delta: 'Hi' },
    ]);
    expect(chunker.next(withTool)).toEqual([]);
    expect(chunker.next({ ...withTool, status: 'aborted', error: 'cancelled by a device' })).toEqual([
      { type: 'reasoning-end', id: 'r' },
      { type: 'text-end', id: 't' },
      { type: 'message-metadata', messageMetadata: { status: 'aborted', error: 'cancelled by a device', authorId: 'bot' } },
      { type: 'abort', reason: 'cancelled by a device' },
    ]);
    expect(chunker.ended).toBe(true);
    expect(chunker.next({ ...withTool, status: 'complete' })).toEqual([]);
  });

  it('streams a plain-text answer as one text part, starting with everything so far', () => {
    const chunker = new AnswerChunker('a');
    expect(chunker.next({ ...base, text: 'Hello' }).map((chunk) => chunk.type)).toEqual(['start', 'text-start', 'text-delta']);
    expect(chunker.next({ ...base, text: 'Hello world', status: 'complete' })).toEqual([
      { type: 'text-delta', id: 'text', delta: ' world' },
      { type: 'text-end', id: 'text' },
      { type: 'finish', finishReason: 'stop', messageMetadata: { status: 'complete', authorId: 'bot' } },
    ]);
  });
});
