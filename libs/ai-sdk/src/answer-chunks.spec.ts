import { lastAssistantMessageIsCompleteWithToolCalls, readUIMessageStream, type UIMessage, type UIMessageChunk } from 'ai';
import type { Message, MessageBlock } from '@seqline/protocol';
import { AnswerChunker } from './answer-chunks.js';
import { toUIMessage } from './ui-messages.js';

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
      { type: 'start-step' },
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

  it('emits a tool output again when it comes back after an error replaced it, as history shows it', () => {
    const chunker = new AnswerChunker('a');
    const tool = (result: { output?: string; error?: string }): Message => ({ ...base, blocks: [{ type: 'tool', id: 'c', toolName: 'lookup', input: '{}', ...result }] });
    chunker.next(tool({ output: '"x"' }));
    expect(chunker.next(tool({ error: 'boom' }))).toEqual([{ type: 'tool-output-error', toolCallId: 'c', errorText: 'boom' }]);
    expect(chunker.next(tool({ output: '"x"' }))).toEqual([{ type: 'tool-output-available', toolCallId: 'c', output: 'x' }]);
  });

  it('streams a plain-text answer as one text part, starting with everything so far', () => {
    const chunker = new AnswerChunker('a');
    expect(chunker.next({ ...base, text: 'Hello' }).map((chunk) => chunk.type)).toEqual(['start', 'start-step', 'text-start', 'text-delta']);
    expect(chunker.next({ ...base, text: 'Hello world', status: 'complete' })).toEqual([
      { type: 'text-delta', id: 'text', delta: ' world' },
      { type: 'text-end', id: 'text' },
      { type: 'finish', finishReason: 'stop', messageMetadata: { status: 'complete', authorId: 'bot' } },
    ]);
  });

  describe('an answer that ran a tool, then wrote its text (two model calls)', () => {
    const reasoning: MessageBlock = { type: 'reasoning', id: '0-r1', text: 'Let me look.' };
    const call: MessageBlock = { type: 'tool', id: 'call-1', toolName: 'lookup', input: '{"q":"x"}', output: '{"hits":1}' };
    const text: MessageBlock = { type: 'text', id: '1-t1', text: 'One hit.' };
    const complete: Message = { ...base, status: 'complete', text: 'One hit.', blocks: [reasoning, call, text] };

    it('puts the text in a step of its own and ends the first step when the second starts', () => {
      const chunker = new AnswerChunker('a');
      chunker.next({ ...base, blocks: [reasoning, call] });
      expect(chunker.next({ ...base, blocks: [reasoning, call, { ...text, text: 'One' }] })).toEqual([
        { type: 'reasoning-end', id: '0-r1' },
        { type: 'start-step' },
        { type: 'text-start', id: '1-t1' },
        { type: 'text-delta', id: '1-t1', delta: 'One' },
      ]);
      expect(chunker.next(complete)).toEqual([
        { type: 'text-delta', id: '1-t1', delta: ' hit.' },
        { type: 'text-end', id: '1-t1' },
        { type: 'finish', finishReason: 'stop', messageMetadata: { status: 'complete', authorId: 'bot' } },
      ]);
    });

    it('is not taken by useChat for a tool call waiting for the page, streamed or from history', async () => {
      // Streamed from the start, and joined late (a reload): the whole answer in one state.
      const live = new AnswerChunker('a');
      const streamed = [...live.next({ ...base, blocks: [reasoning] }), ...live.next({ ...base, blocks: [reasoning, call] }), ...live.next(complete)];
      const late = new AnswerChunker('a').next(complete);
      for (const chunks of [streamed, late]) {
        const message = await assemble(chunks);
        expect(message.parts.map((part) => part.type)).toEqual(['step-start', 'reasoning', 'tool-lookup', 'step-start', 'text']);
        expect(lastAssistantMessageIsCompleteWithToolCalls({ messages: [message] })).toBe(false);
      }
      const history = toUIMessage(complete);
      expect(history.parts.map((part) => part.type)).toEqual(['step-start', 'reasoning', 'tool-lookup', 'step-start', 'text']);
      expect(lastAssistantMessageIsCompleteWithToolCalls({ messages: [history] })).toBe(false);
    });

    it('shows the earlier steps done while the last one streams', async () => {
      const streaming: Message = { ...base, blocks: [reasoning, { ...call, output: undefined }, { ...text, text: 'One' }] };
      const message = await assemble(new AnswerChunker('a').next(streaming));
      expect(message.parts).toMatchObject([
        { type: 'step-start' },
        { type: 'reasoning', state: 'done' },
        { type: 'tool-lookup', state: 'input-available', input: { q: 'x' } },
        { type: 'step-start' },
        { type: 'text', text: 'One', state: 'streaming' },
      ]);
      expect(toUIMessage(streaming).parts).toEqual([
        { type: 'step-start' },
        { type: 'reasoning', text: 'Let me look.', state: 'done' },
        { type: 'tool-lookup', toolCallId: 'call-1', state: 'input-available', input: { q: 'x' } },
        { type: 'step-start' },
        { type: 'text', text: 'One', state: 'streaming' },
      ]);
    });
  });

  it('takes no step from an id of an agent of its own that only starts with a number, such as 2024-report', () => {
    const message: Message = { ...base, status: 'complete', blocks: [{ type: 'text', id: '2024-report', text: 'Q4' }, { type: 'text', id: '2025-plan', text: 'Q1' }] };
    expect(toUIMessage(message).parts.map((part) => part.type)).toEqual(['step-start', 'text', 'text']);
  });

  it('goes on in a new part when an ended part grows again, which the AI SDK would refuse as a delta after its end', async () => {
    const chunker = new AnswerChunker('a');
    const first: MessageBlock = { type: 'text', id: '0-a', text: 'one' };
    const second: MessageBlock = { type: 'text', id: '1-b', text: 'two' };
    const chunks = [...chunker.next({ ...base, blocks: [first, second] }), ...chunker.next({ ...base, status: 'complete', blocks: [{ ...first, text: 'one more' }, second] })];
    const message = await assemble(chunks);
    expect(message.parts.filter((part) => part.type === 'text').map((part) => part.text)).toEqual(['one', 'two', ' more']);
  });
});

/** The UI message the AI SDK itself assembles from the chunks. */
async function assemble(chunks: UIMessageChunk[]): Promise<UIMessage> {
  let message: UIMessage | undefined;
  const stream = new ReadableStream<UIMessageChunk>({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(chunk);
      controller.close();
    },
  });
  for await (const next of readUIMessageStream({ stream, terminateOnError: true })) message = structuredClone(next);
  return message!;
}
