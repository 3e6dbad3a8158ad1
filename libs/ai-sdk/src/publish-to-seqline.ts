import type { TextStreamPart, ToolSet, UIMessageChunk } from 'ai';
import { DEFAULT_LIMITS, deltaBytesFor, deltaLength, ErrorCode, SeqlineError, utf8Length, type AnswerEnd, type BlockRef } from '@seqline/protocol';
import { dataBlockId } from './data-block-id.js';

/** The part of an agent SDK answer (`agent.startMessage(...)`) the helper writes to. */
export interface SeqlineAnswer {
  append(text: string, block?: BlockRef): void;
  complete(): Promise<void>;
  fail(error: string): Promise<void>;
  /** Aborted when a device cancels the answer, or the service refuses it. */
  readonly signal: AbortSignal;
  /** Why the service refused the answer, when it did (the agent SDK's `AnswerStream` has it). */
  readonly refusal?: Error;
  /** How the service ended the answer, when its notice stopped it (the agent SDK's `AnswerStream` has it). */
  readonly endedAs?: AnswerEnd;
  /** The most characters one append may carry; `LIMIT_DELTA_CHARS`' default when absent. */
  readonly maxDeltaChars?: number;
  /** The most bytes one append's delta may take JSON-encoded; what `LIMIT_FRAME_BYTES`' default leaves when absent. */
  readonly maxDeltaBytes?: number;
}

/** What can be published: a `streamText` result, a UI message stream, or plain text chunks. */
export type SeqlineSource =
  | { fullStream: AsyncIterable<TextStreamPart<ToolSet>> }
  | ReadableStream<UIMessageChunk>
  | AsyncIterable<UIMessageChunk>
  | AsyncIterable<string>;

/** How the answer ended. */
export type PublishOutcome = 'complete' | 'aborted' | 'failed';

/**
 * Publishes an AI SDK result into a Seqline answer: text, reasoning, tool calls (input, output,
 * errors) and data go out as typed parts through the agent SDK, which coalesces them; the
 * answer is completed when the model finishes, failed if it errs, and left alone once a device
 * cancelled it. Pass a function to have the answer's cancel signal handed to the model call.
 *
 * @example
 * const answer = agent.startMessage(prompt.conversationId, { messageId: `${prompt.messageId}-answer` });
 * const { status, parts } = await answer.ready;
 * if (status !== 'streaming') return; // answered before
 * // A model cannot go on from another call's half answer: one taken over mid-answer is failed.
 * if (parts > 0) return answer.fail('the agent stopped mid-answer; ask again');
 * await publishToSeqline(answer, (abortSignal) => streamText({ model, prompt: prompt.text, abortSignal }));
 */
export async function publishToSeqline(answer: SeqlineAnswer, source: SeqlineSource | ((abortSignal: AbortSignal) => SeqlineSource | Promise<SeqlineSource>)): Promise<PublishOutcome> {
  // Given up here (an error part, a value too large, an interrupted stream): the model call is
  // stopped at once, before the answer's end is written. Leaving the stream unread does not stop
  // it: streamText tees the provider's stream. (Seqline's own stop aborts `answer.signal`.)
  const own = new AbortController();
  const giveUp = (): void => own.abort(new Error('the answer was given up'));
  const writer = new BlockWriter(answer);
  try {
    const resolved = typeof source === 'function' ? await source(eitherSignal(answer.signal, own.signal)) : source;
    const fromModel = 'fullStream' in resolved;
    for await (const item of iterate(resolved)) {
      if (answer.signal.aborted) break;
      const failure = typeof item === 'string' ? writer.text(item) : fromModel ? writer.streamPart(item as TextStreamPart<ToolSet>) : writer.uiChunk(item as UIMessageChunk);
      if (failure !== undefined) {
        giveUp();
        await answer.fail(failure);
        return 'failed';
      }
      if (writer.aborted) break;
    }
    if (answer.signal.aborted) return stopped(answer);
    // The model call was aborted by something other than Seqline's cancel (the caller's own timeout):
    // the answer must still end for every device.
    if (writer.aborted) {
      giveUp();
      await answer.fail('the model call was aborted');
      return 'failed';
    }
    await answer.complete();
    return 'complete';
  } catch (error) {
    // The model call ends with an abort error when the cancel reached it: the answer is aborted already.
    if (answer.signal.aborted) return stopped(answer);
    giveUp();
    await answer.fail(messageOf(error)).catch(() => undefined);
    return 'failed';
  }
}

/** Aborted when either is (`AbortSignal.any`, which Node has from 20.3). */
function eitherSignal(a: AbortSignal, b: AbortSignal): AbortSignal {
  if (typeof AbortSignal.any === 'function') return AbortSignal.any([a, b]);
  const either = new AbortController();
  for (const signal of [a, b]) {
    if (signal.aborted) either.abort(signal.reason);
    else signal.addEventListener('abort', () => either.abort(signal.reason), { once: true });
  }
  return either.signal;
}

/**
 * Tool approval (`needsApproval`) asks the user before a tool runs and resumes the model with the
 * answer: a Seqline answer has no way back from the devices to the model call, so the call ends as
 * not run, with this error for devices to show.
 */
const NEEDS_APPROVAL = 'this tool call needs approval, which an answer published to Seqline cannot ask for: it did not run';
const DENIED = 'this tool call was denied: it did not run';

/** Maps AI SDK stream parts to appends by block; returns an error message when the source failed. */
class BlockWriter {
  aborted = false;
  private step = 0;
  /** Data parts without an id so far: each gets a block of its own. */
  private unnamedData = 0;
  private readonly tools = new Map<string, { toolName: string; streamed: boolean }>();
  /** Calls ended as not run (an approval asked for, or denied). */
  private readonly notRun = new Set<string>();

  constructor(private readonly answer: SeqlineAnswer) {}

  text(text: string): undefined {
    this.answer.append(text);
    return undefined;
  }

  streamPart(part: TextStreamPart<ToolSet>): string | undefined {
    switch (part.type) {
      case 'finish-step':
        this.step++;
        return undefined;
      case 'text-delta':
        this.answer.append(part.text, { type: 'text', id: this.blockId(part.id) });
        return undefined;
      case 'reasoning-delta':
        this.answer.append(part.text, { type: 'reasoning', id: this.blockId(part.id) });
        return undefined;
      case 'tool-input-start':
        this.tools.set(part.id, { toolName: part.toolName, streamed: false });
        return undefined;
      case 'tool-input-delta':
        this.toolInput(part.id, undefined, part.delta);
        return undefined;
      case 'tool-call':
        this.toolCall(part.toolCallId, part.toolName, part.input);
        return undefined;
      case 'tool-result':
        this.toolOutput(part.toolCallId, part.toolName, part.output);
        return undefined;
      case 'tool-error':
        this.answer.append(this.errorText(messageOf(part.error)), { type: 'tool', id: part.toolCallId, toolName: part.toolName, field: 'error' });
        return undefined;
      case 'tool-approval-request':
        // Decided by the stream's own approval function: an approved tool runs (its result follows), a denied one is said so next.
        if (!part.isAutomatic) this.toolNotRun(part.toolCall.toolCallId, NEEDS_APPROVAL);
        return undefined;
      case 'tool-output-denied':
        this.toolNotRun(part.toolCallId, DENIED);
        return undefined;
      case 'abort':
        this.aborted = true;
        return undefined;
      case 'error':
        return messageOf(part.error);
      case 'finish':
        return unfinished(part.finishReason);
      default:
        return undefined;
    }
  }

  uiChunk(chunk: UIMessageChunk): string | undefined {
    switch (chunk.type) {
      // `reset-step`: a step retried (a workflow agent's retry). Blocks only grow, so the dropped
      // attempt stays, but the retry must not carry on from it in the same blocks.
      case 'finish-step':
      case 'reset-step':
        this.step++;
        return undefined;
      case 'text-delta':
        this.answer.append(chunk.delta, { type: 'text', id: this.blockId(chunk.id) });
        return undefined;
      case 'reasoning-delta':
        this.answer.append(chunk.delta, { type: 'reasoning', id: this.blockId(chunk.id) });
        return undefined;
      case 'tool-input-start':
        this.tools.set(chunk.toolCallId, { toolName: chunk.toolName, streamed: false });
        return undefined;
      case 'tool-input-delta':
        this.toolInput(chunk.toolCallId, undefined, chunk.inputTextDelta);
        return undefined;
      case 'tool-input-available':
        this.toolCall(chunk.toolCallId, chunk.toolName, chunk.input);
        return undefined;
      case 'tool-input-error':
        // A call the model made invalidly (unknown tool, input that fails its schema): shown as the
        // call with its error, as useChat shows it, and the tool is known to an output error after it.
        this.toolCall(chunk.toolCallId, chunk.toolName, chunk.input);
        this.answer.append(this.errorText(chunk.errorText), { type: 'tool', id: chunk.toolCallId, toolName: chunk.toolName, field: 'error' });
        return undefined;
      case 'tool-output-available': {
        const tool = this.tools.get(chunk.toolCallId);
        if (tool) this.toolOutput(chunk.toolCallId, tool.toolName, chunk.output);
        return undefined;
      }
      case 'tool-output-error': {
        const tool = this.tools.get(chunk.toolCallId);
        if (tool) this.answer.append(this.errorText(chunk.errorText), { type: 'tool', id: chunk.toolCallId, toolName: tool.toolName, field: 'error' });
        return undefined;
      }
      case 'tool-approval-request':
        if (!chunk.isAutomatic) this.toolNotRun(chunk.toolCallId, NEEDS_APPROVAL);
        return undefined;
      case 'tool-output-denied':
        this.toolNotRun(chunk.toolCallId, DENIED);
        return undefined;
      case 'abort':
        this.aborted = true;
        return undefined;
      case 'error':
        return messageOf(chunk.errorText);
      case 'finish':
        return unfinished(chunk.finishReason);
      default:
        if (chunk.type.startsWith('data-') && 'data' in chunk && !('transient' in chunk && chunk.transient)) {
          // Without an id every data part is a part of its own, as useChat keeps it; with one, it replaces the last of that id.
          const id = 'id' in chunk && typeof chunk.id === 'string' ? chunk.id : `${chunk.type}-${this.unnamedData++}`;
          const name = chunk.type.slice('data-'.length);
          this.setWhole(JSON.stringify(chunk.data ?? null), { type: 'data', id: dataBlockId(name, id), name });
        }
        return undefined;
    }
  }

  /** Providers number text parts per step: the step (0, 1, …) keeps ids of a multi-step answer apart. */
  private blockId(id: string): string {
    return `${this.step}-${id}`;
  }

  private toolInput(toolCallId: string, toolName: string | undefined, delta: string): void {
    const tool = this.tools.get(toolCallId) ?? { toolName: toolName ?? 'unknown', streamed: false };
    this.tools.set(toolCallId, tool);
    if (delta.length === 0) return;
    tool.streamed = true;
    this.answer.append(delta, { type: 'tool', id: toolCallId, toolName: tool.toolName });
  }

  /** A complete call: its input, unless it was streamed already. */
  private toolCall(toolCallId: string, toolName: string, input: unknown): void {
    const tool = this.tools.get(toolCallId);
    if (tool?.streamed) return;
    this.tools.set(toolCallId, { toolName, streamed: true });
    this.answer.append(JSON.stringify(input ?? {}), { type: 'tool', id: toolCallId, toolName });
  }

  /**
   * A call that will not run: devices would otherwise show it waiting for an output that never
   * comes (and `useChat` hand it to `onToolCall`). Once per call.
   */
  private toolNotRun(toolCallId: string, why: string): void {
    const tool = this.tools.get(toolCallId);
    if (!tool || this.notRun.has(toolCallId)) return;
    this.notRun.add(toolCallId);
    this.answer.append(why, { type: 'tool', id: toolCallId, toolName: tool.toolName, field: 'error' });
  }

  private toolOutput(toolCallId: string, toolName: string, output: unknown): void {
    this.setWhole(JSON.stringify(output ?? null), { type: 'tool', id: toolCallId, toolName, field: 'output' });
  }

  /** A tool's error is a message for people: one too long for an append (characters or bytes) is cut, not refused. */
  private errorText(text: string): string {
    const chars = this.answer.maxDeltaChars ?? DEFAULT_LIMITS.deltaChars;
    const bytes = this.answer.maxDeltaBytes ?? deltaBytesFor(DEFAULT_LIMITS.frameBytes);
    if (text.length <= chars && utf8Length(JSON.stringify(text)) <= bytes) return text;
    // Room for the ellipsis: one character, three bytes.
    return `${text.slice(0, deltaLength(text, chars - 1, bytes - 3))}…`;
  }

  /** A value set whole travels in one append: one the service would refuse fails the answer here instead. */
  private setWhole(text: string, block: BlockRef): void {
    const limit = this.answer.maxDeltaChars ?? DEFAULT_LIMITS.deltaChars;
    if (text.length > limit) {
      throw new SeqlineError(ErrorCode.DeltaTooLarge, `a ${block.type} value of ${text.length} characters does not fit one append (at most ${limit})`);
    }
    const bytes = utf8Length(JSON.stringify(text));
    const byteLimit = this.answer.maxDeltaBytes ?? deltaBytesFor(DEFAULT_LIMITS.frameBytes);
    if (bytes > byteLimit) {
      throw new SeqlineError(ErrorCode.FrameTooLarge, `a ${block.type} value of ${bytes} bytes (JSON-encoded) does not fit one append (at most ${byteLimit})`);
    }
    this.answer.append(text, block);
  }
}

async function* iterate(source: SeqlineSource): AsyncGenerator<string | UIMessageChunk | TextStreamPart<ToolSet>> {
  if ('fullStream' in source) {
    yield* source.fullStream;
    return;
  }
  if (source instanceof ReadableStream) {
    const reader = (source as ReadableStream<UIMessageChunk>).getReader();
    let done = false;
    try {
      for (;;) {
        const next = await reader.read();
        done = next.done;
        if (next.done) return;
        yield next.value;
      }
    } finally {
      // Left early (a device cancelled, or the stream reported an error): stop the model call behind it too.
      if (!done) await reader.cancel().catch(() => undefined);
      reader.releaseLock();
    }
  }
  yield* source as AsyncIterable<string | UIMessageChunk>;
}

/**
 * How an answer whose signal aborted ended: cancelled by a device, taken over by another producer,
 * or refused by the service for what it held (too large), which the answer is failed for, so no
 * device waits for the agent lease to end it.
 */
async function stopped(answer: SeqlineAnswer): Promise<PublishOutcome> {
  // Ended by the service as abandoned: already failed for every device, nothing to write.
  if (answer.endedAs === 'failed') return 'failed';
  const code = answer.refusal instanceof SeqlineError ? answer.refusal.code : undefined;
  if (answer.refusal === undefined || code === ErrorCode.MessageFinished) return 'aborted';
  if (code !== ErrorCode.Fenced) await answer.fail(answer.refusal.message).catch(() => undefined);
  return 'failed';
}


/**
 * A finish that did not finish: the provider's stream ended without the model saying it was done
 * (`interrupted`), so the text so far is partial. Devices would take a completed answer as whole.
 */
function unfinished(finishReason: string | undefined): string | undefined {
  return finishReason === 'interrupted' ? 'the model stream ended before the model finished (interrupted)' : undefined;
}

function messageOf(error: unknown): string {
  const text = error instanceof Error ? error.message : typeof error === 'string' ? error : JSON.stringify(error);
  return (text || 'the model call failed').slice(0, 1024);
}
