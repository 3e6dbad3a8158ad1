import { acceptsBlock, appendToBlocks, type BlockRef, type MessageBlock } from '@seqline/protocol';
import { simulateReadableStream, streamText, type TextStreamPart, type ToolSet, type UIMessageChunk } from 'ai';
import { MockLanguageModelV4 } from 'ai/test';
import { publishToSeqline, type SeqlineAnswer } from './publish-to-seqline.js';

type StreamPart = Awaited<ReturnType<MockLanguageModelV4['doStream']>>['stream'] extends ReadableStream<infer Part> ? Part : never;

/** An answer that records what it was given, as the agent SDK's would send it. */
class RecordingAnswer implements SeqlineAnswer {
  readonly appends: { text: string; block?: BlockRef }[] = [];
  ended?: string;
  endedAs?: 'aborted' | 'failed';
  private readonly controller = new AbortController();
  get signal(): AbortSignal {
    return this.controller.signal;
  }
  append(text: string, block?: BlockRef): void {
    this.appends.push(block ? { text, block } : { text });
  }
  async complete(): Promise<void> {
    this.ended = 'complete';
  }
  async fail(error: string): Promise<void> {
    this.ended = `failed: ${error}`;
  }
  /** The service's cancel notice, as the agent SDK takes it. */
  notice(reason: string, status: 'aborted' | 'failed'): void {
    this.endedAs = status;
    this.controller.abort(new Error(reason));
  }
}

const usage = { inputTokens: { total: 1, noCache: 1, cacheRead: 0, cacheWrite: 0 }, outputTokens: { total: 2, text: 2, reasoning: 1 } };
const model = (finishReason: 'stop' | 'interrupted' = 'stop') =>
  new MockLanguageModelV4({
    doStream: async () => ({
      stream: simulateReadableStream<StreamPart>({
        chunks: [
          { type: 'reasoning-start', id: 'r' },
          { type: 'reasoning-delta', id: 'r', delta: 'Hmm' },
          { type: 'reasoning-end', id: 'r' },
          { type: 'text-start', id: 't' },
          { type: 'text-delta', id: 't', delta: 'Hi' },
          { type: 'text-delta', id: 't', delta: '!' },
          { type: 'text-end', id: 't' },
          { type: 'finish', finishReason: { unified: finishReason, raw: finishReason }, usage },
        ],
      }),
    }),
  });

describe('publishToSeqline', () => {
  it('publishes a UI message stream (toUIMessageStream) like a streamText result', async () => {
    const answer = new RecordingAnswer();
    const outcome = await publishToSeqline(answer, streamText({ model: model(), prompt: 'x' }).toUIMessageStream());
    expect(outcome).toBe('complete');
    expect(answer.ended).toBe('complete');
    expect(answer.appends).toEqual([
      { text: 'Hmm', block: { type: 'reasoning', id: '0-r' } },
      { text: 'Hi', block: { type: 'text', id: '0-t' } },
      { text: '!', block: { type: 'text', id: '0-t' } },
    ]);
  });

  it('sets data parts and tool outputs whole, and fails on an error chunk', async () => {
    const answer = new RecordingAnswer();
    const chunks: UIMessageChunk[] = [
      { type: 'tool-input-available', toolCallId: 'c', toolName: 'lookup', input: { q: 1 } },
      { type: 'tool-output-available', toolCallId: 'c', output: { found: true } },
      // The id of the tool call it belongs to, as pages often give one: its block id names its type.
      { type: 'data-weather', id: 'c', data: { celsius: 21 } },
      { type: 'error', errorText: 'rate limited' },
    ];
    expect(await publishToSeqline(answer, simulateReadableStream({ chunks }))).toBe('failed');
    expect(answer.appends).toEqual([
      { text: '{"q":1}', block: { type: 'tool', id: 'c', toolName: 'lookup' } },
      { text: '{"found":true}', block: { type: 'tool', id: 'c', toolName: 'lookup', field: 'output' } },
      { text: '{"celsius":21}', block: { type: 'data', id: 'data-weather:c', name: 'weather' } },
    ]);
    let blocks: MessageBlock[] = [];
    for (const append of answer.appends) {
      expect(acceptsBlock(blocks, append.block!)).toBe(true);
      blocks = appendToBlocks(blocks, append.block!, append.text)!;
    }
    expect(answer.ended).toBe('failed: rate limited');
  });

  it('keeps each data part without an id as a part of its own, and replaces one with an id', async () => {
    const answer = new RecordingAnswer();
    const chunks: UIMessageChunk[] = [
      { type: 'data-source', data: { url: 'a' } },
      { type: 'data-source', data: { url: 'b' } },
      { type: 'data-weather', id: 'w', data: { celsius: 20 } },
      { type: 'data-weather', id: 'w', data: { celsius: 21 } },
      { type: 'finish' },
    ];
    expect(await publishToSeqline(answer, simulateReadableStream({ chunks }))).toBe('complete');
    expect(answer.appends).toEqual([
      { text: '{"url":"a"}', block: { type: 'data', id: 'data-source:data-source-0', name: 'source' } },
      { text: '{"url":"b"}', block: { type: 'data', id: 'data-source:data-source-1', name: 'source' } },
      { text: '{"celsius":20}', block: { type: 'data', id: 'data-weather:w', name: 'weather' } },
      { text: '{"celsius":21}', block: { type: 'data', id: 'data-weather:w', name: 'weather' } },
    ]);
  });

  it('writes a step retried after reset-step to blocks of its own, not on from the dropped attempt', async () => {
    const answer = new RecordingAnswer();
    const chunks: UIMessageChunk[] = [
      { type: 'start-step' },
      { type: 'text-start', id: 't' },
      { type: 'text-delta', id: 't', delta: 'Hel' },
      { type: 'reset-step' },
      { type: 'start-step' },
      { type: 'text-start', id: 't' },
      { type: 'text-delta', id: 't', delta: 'Hello' },
      { type: 'text-end', id: 't' },
      { type: 'finish-step' },
      { type: 'finish' },
    ];
    expect(await publishToSeqline(answer, simulateReadableStream({ chunks }))).toBe('complete');
    expect(answer.appends).toEqual([
      { text: 'Hel', block: { type: 'text', id: '0-t' } },
      { text: 'Hello', block: { type: 'text', id: '1-t' } },
    ]);
  });

  it('fails, keeping its text, an answer whose model stream was interrupted before it finished, from a streamText result and from a UI stream', async () => {
    const fromResult = new RecordingAnswer();
    expect(await publishToSeqline(fromResult, streamText({ model: model('interrupted'), prompt: 'x' }))).toBe('failed');
    expect(fromResult.appends.map((append) => append.text).join('')).toBe('HmmHi!');
    expect(fromResult.ended).toBe('failed: the model stream ended before the model finished (interrupted)');
    const fromUi = new RecordingAnswer();
    expect(await publishToSeqline(fromUi, simulateReadableStream<UIMessageChunk>({ chunks: [{ type: 'text-delta', id: 't', delta: 'Hi' }, { type: 'finish', finishReason: 'interrupted' }] }))).toBe('failed');
    expect(fromUi.ended).toBe('failed: the model stream ended before the model finished (interrupted)');
  });

  it('keeps a tool call the model made invalidly, with its error, when the UI stream gives no input start first', async () => {
    const answer = new RecordingAnswer();
    const chunks: UIMessageChunk[] = [
      { type: 'tool-input-error', toolCallId: 'c', toolName: 'lookup', input: { q: 'x' }, errorText: 'input does not match the schema' },
      { type: 'tool-output-error', toolCallId: 'c', errorText: 'not run: invalid input' },
    ];
    expect(await publishToSeqline(answer, simulateReadableStream({ chunks }))).toBe('complete');
    expect(answer.appends).toEqual([
      { text: '{"q":"x"}', block: { type: 'tool', id: 'c', toolName: 'lookup' } },
      { text: 'input does not match the schema', block: { type: 'tool', id: 'c', toolName: 'lookup', field: 'error' } },
      { text: 'not run: invalid input', block: { type: 'tool', id: 'c', toolName: 'lookup', field: 'error' } },
    ]);
  });

  it("cuts a tool's error too long for one append, instead of having the answer refused", async () => {
    const answer = new RecordingAnswer();
    const chunks: UIMessageChunk[] = [
      { type: 'tool-input-available', toolCallId: 'c', toolName: 'lookup', input: {} },
      { type: 'tool-output-error', toolCallId: 'c', errorText: 'e'.repeat(20_000) },
    ];
    expect(await publishToSeqline(answer, simulateReadableStream({ chunks }))).toBe('complete');
    const error = answer.appends.find((append) => append.block?.type === 'tool' && append.block.field === 'error')!;
    expect({ length: error.text.length, end: error.text.slice(-2) }).toEqual({ length: 16_384, end: 'e…' });
  });

  it("keeps to the agent's own limits (a service set below the defaults): a tool's error is cut to them, a tool value over them fails the answer", async () => {
    const limited = () => Object.assign(new RecordingAnswer(), { maxDeltaChars: 100, maxDeltaBytes: 200 });
    const errorOf = (answer: RecordingAnswer) => answer.appends.find((append) => append.block?.type === 'tool' && append.block.field === 'error')!.text;
    const long = limited();
    const input = { type: 'tool-input-available', toolCallId: 'c', toolName: 'lookup', input: {} } as const;
    expect(await publishToSeqline(long, simulateReadableStream<UIMessageChunk>({ chunks: [input, { type: 'tool-output-error', toolCallId: 'c', errorText: 'e'.repeat(500) }] }))).toBe('complete');
    expect(errorOf(long)).toBe(`${'e'.repeat(99)}…`);
    // Characters that JSON escapes (six bytes each) pass the byte limit first; a surrogate pair is never cut.
    const escaped = limited();
    expect(await publishToSeqline(escaped, simulateReadableStream<UIMessageChunk>({ chunks: [input, { type: 'tool-output-error', toolCallId: 'c', errorText: '\u0001'.repeat(90) }] }))).toBe('complete');
    expect(errorOf(escaped)).toBe(`${'\u0001'.repeat(23)}…`);
    const big = limited();
    const output = { type: 'tool-output-available', toolCallId: 'c', output: 'x'.repeat(150) } as const;
    expect(await publishToSeqline(big, simulateReadableStream<UIMessageChunk>({ chunks: [input, output] }))).toBe('failed');
    expect(big.ended).toBe('failed: a tool value of 152 characters does not fit one append (at most 100)');
  });

  it("resolves 'failed' for an answer the service ended as abandoned, and 'aborted' for one a device cancelled, writing nothing more", async () => {
    for (const status of ['failed', 'aborted'] as const) {
      const answer = new RecordingAnswer();
      const source = (async function* () {
        yield 'Hi';
        answer.notice(status === 'failed' ? 'agent lease expired: no event for 60000 ms' : 'cancelled by a device', status);
        yield '!';
      })();
      expect(await publishToSeqline(answer, source)).toBe(status);
      expect({ appends: answer.appends, ended: answer.ended }).toEqual({ appends: [{ text: 'Hi' }], ended: undefined });
    }
  });

  it('fails the answer when the model call is aborted by something other than a device cancel', async () => {
    const answer = new RecordingAnswer();
    const chunks: UIMessageChunk[] = [{ type: 'text-start', id: 't' }, { type: 'text-delta', id: 't', delta: 'Hi' }, { type: 'abort' }];
    expect(await publishToSeqline(answer, simulateReadableStream({ chunks }))).toBe('failed');
    expect(answer.appends).toEqual([{ text: 'Hi', block: { type: 'text', id: '0-t' } }]);
    expect(answer.ended).toBe('failed: the model call was aborted');
  });

  it('cancels a UI message stream it stops reading, so the model call behind it stops too', async () => {
    const answer = new RecordingAnswer();
    let cancelled: unknown;
    const chunks: UIMessageChunk[] = [{ type: 'text-start', id: 't' }, { type: 'text-delta', id: 't', delta: 'Hi' }, { type: 'error', errorText: 'overloaded' }];
    const source = new ReadableStream<UIMessageChunk>({
      pull(controller) {
        // The model would go on producing after the error chunk.
        controller.enqueue(chunks.shift() ?? { type: 'text-delta', id: 't', delta: ' more' });
      },
      cancel(reason) {
        cancelled = reason ?? 'cancelled';
      },
    });
    expect(await publishToSeqline(answer, source)).toBe('failed');
    expect(answer.appends).toEqual([{ text: 'Hi', block: { type: 'text', id: '0-t' } }]);
    expect(cancelled).toBeDefined();
  });

  it('fails the answer with DELTA_TOO_LARGE for a tool output that cannot fit one append', async () => {
    const answer = new RecordingAnswer();
    const output = 'x'.repeat(20_000);
    const chunks: UIMessageChunk[] = [
      { type: 'tool-input-available', toolCallId: 'c', toolName: 'lookup', input: {} },
      { type: 'tool-output-available', toolCallId: 'c', output },
    ];
    expect(await publishToSeqline(answer, simulateReadableStream({ chunks }))).toBe('failed');
    expect(answer.appends).toEqual([{ text: '{}', block: { type: 'tool', id: 'c', toolName: 'lookup' } }]);
    expect(answer.ended).toBe('failed: a tool value of 20002 characters does not fit one append (at most 16384)');
  });

  it('stops the model call when it gives the answer up itself (an error part), not only on a device cancel', async () => {
    const answer = new RecordingAnswer();
    let modelSignal: AbortSignal | undefined;
    const slow = new MockLanguageModelV4({
      doStream: async ({ abortSignal }) => {
        modelSignal = abortSignal;
        return {
          stream: simulateReadableStream<StreamPart>({
            // The model would go on producing (and billing) after the error.
            chunks: [
              { type: 'text-start', id: 't' },
              { type: 'text-delta', id: 't', delta: 'Hi' },
              { type: 'error', error: new Error('overloaded') },
              ...Array.from({ length: 50 }, () => ({ type: 'text-delta' as const, id: 't', delta: ' more' })),
            ],
            chunkDelayInMs: 20,
          }),
        };
      },
    });
    expect(await publishToSeqline(answer, (abortSignal) => streamText({ model: slow, prompt: 'x', abortSignal }))).toBe('failed');
    expect(answer.ended).toBe('failed: overloaded');
    expect(modelSignal?.aborted).toBe(true);
    // Seqline's own signal is the answer's: it was not cancelled.
    expect(answer.signal.aborted).toBe(false);
  });

  it('ends a tool call that waits for an approval, or was denied, as not run instead of leaving it waiting in a completed answer', async () => {
    const answer = new RecordingAnswer();
    const chunks: UIMessageChunk[] = [
      { type: 'tool-input-available', toolCallId: 'a', toolName: 'book', input: { night: 1 } },
      { type: 'tool-approval-request', approvalId: 'p', toolCallId: 'a' },
      { type: 'tool-input-available', toolCallId: 'd', toolName: 'pay', input: {} },
      { type: 'tool-output-denied', toolCallId: 'd' },
      { type: 'finish', finishReason: 'tool-calls' },
    ];
    expect(await publishToSeqline(answer, simulateReadableStream({ chunks }))).toBe('complete');
    expect(answer.appends).toEqual([
      { text: '{"night":1}', block: { type: 'tool', id: 'a', toolName: 'book' } },
      { text: 'this tool call needs approval, which an answer published to Seqline cannot ask for: it did not run', block: { type: 'tool', id: 'a', toolName: 'book', field: 'error' } },
      { text: '{}', block: { type: 'tool', id: 'd', toolName: 'pay' } },
      { text: 'this tool call was denied: it did not run', block: { type: 'tool', id: 'd', toolName: 'pay', field: 'error' } },
    ]);

    const fromModel = new RecordingAnswer();
    const toolCall = { type: 'tool-call', toolCallId: 'a', toolName: 'book', input: { night: 1 } } as const;
    const parts = [toolCall, { type: 'tool-approval-request', approvalId: 'p', toolCall }, { type: 'finish', finishReason: 'tool-calls' }] as unknown as TextStreamPart<ToolSet>[];
    expect(await publishToSeqline(fromModel, { fullStream: (async function* () { yield* parts; })() })).toBe('complete');
    expect(fromModel.appends.at(-1)).toEqual({ text: 'this tool call needs approval, which an answer published to Seqline cannot ask for: it did not run', block: { type: 'tool', id: 'a', toolName: 'book', field: 'error' } });

    // Approved or denied by the stream's own approval function: the tool ran, or is said denied, not "needs approval".
    const automatic = new RecordingAnswer();
    const denied = { type: 'tool-call', toolCallId: 'd', toolName: 'pay', input: {} } as const;
    const decided = [
      toolCall,
      { type: 'tool-approval-request', approvalId: 'p', toolCall, isAutomatic: true },
      { type: 'tool-result', toolCallId: 'a', toolName: 'book', input: { night: 1 }, output: { booked: true } },
      denied,
      { type: 'tool-approval-request', approvalId: 'q', toolCall: denied, isAutomatic: true },
      { type: 'tool-output-denied', toolCallId: 'd', toolName: 'pay' },
      { type: 'finish', finishReason: 'tool-calls' },
    ] as unknown as TextStreamPart<ToolSet>[];
    expect(await publishToSeqline(automatic, { fullStream: (async function* () { yield* decided; })() })).toBe('complete');
    expect(automatic.appends.filter((append) => 'field' in (append.block ?? {}) && (append.block as { field?: string }).field !== 'input')).toEqual([
      { text: '{"booked":true}', block: { type: 'tool', id: 'a', toolName: 'book', field: 'output' } },
      { text: 'this tool call was denied: it did not run', block: { type: 'tool', id: 'd', toolName: 'pay', field: 'error' } },
    ]);
  });
});
