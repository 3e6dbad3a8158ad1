import type { UIMessageChunk } from 'ai';
import type { Message, MessageBlock } from '@seqline/protocol';
import { messageBlocks, parseJson, type SeqlineMessageMetadata } from './ui-messages.js';
import { dataPartId } from './data-block-id.js';
import { stepStarts } from './answer-steps.js';

interface Emitted {
  /** Characters of the block's streamed text (text, reasoning, tool input) already sent. */
  sent: number;
  /** A text or reasoning part whose end was sent. */
  ended: boolean;
  inputAvailable: boolean;
  output?: string;
  error?: string;
  data?: string;
}

/**
 * Turns successive states of one answer into AI SDK UI message chunks: each call emits what
 * changed since the last one. Working from state rather than from events means a stream that
 * starts mid-answer (a reload, a second device) begins with everything so far, then goes on
 * live, and that a snapshot replacing the view changes nothing for the reader.
 */
export class AnswerChunker {
  private readonly emitted = new Map<string, Emitted>();
  /** The block indexes whose `start-step` was sent. */
  private readonly steps = new Set<number>();
  private started = false;
  private endedValue = false;

  constructor(private readonly messageId: string) {}

  /** True once the answer's end (`finish`, `abort` or `error`) was emitted. */
  get ended(): boolean {
    return this.endedValue;
  }

  next(message: Message | undefined): UIMessageChunk<SeqlineMessageMetadata>[] {
    const chunks: UIMessageChunk<SeqlineMessageMetadata>[] = [];
    if (this.endedValue || !message) return chunks;
    if (!this.started) {
      this.started = true;
      chunks.push({ type: 'start', messageId: this.messageId, messageMetadata: metadataOf(message, 'streaming') });
    }
    const finished = message.status !== 'streaming';
    const blocks = messageBlocks(message);
    const starts = stepStarts(blocks);
    blocks.forEach((block, index) => {
      if (starts.has(index) && !this.steps.has(index)) {
        this.steps.add(index);
        // The steps before are over: their parts are done, as the AI SDK's own stream ends them before the next step.
        for (const earlier of blocks.slice(0, index)) this.closeBlock(earlier, chunks);
        chunks.push({ type: 'start-step' });
      }
      this.blockChunks(block, finished, chunks);
    });
    if (!finished) return chunks;
    this.endedValue = true;
    for (const block of blocks) this.closeBlock(block, chunks);
    const metadata = metadataOf(message, message.status);
    switch (message.status) {
      case 'complete':
        chunks.push({ type: 'finish', finishReason: 'stop', messageMetadata: metadata });
        break;
      case 'aborted':
        chunks.push({ type: 'message-metadata', messageMetadata: metadata });
        chunks.push({ type: 'abort', reason: message.error ?? 'aborted' });
        break;
      case 'failed':
        chunks.push({ type: 'message-metadata', messageMetadata: metadata });
        chunks.push({ type: 'error', errorText: message.error ?? 'the answer failed' });
        break;
      case 'streaming':
        break; // not reached: only a finished message gets here
    }
    return chunks;
  }

  private blockChunks(block: MessageBlock, finished: boolean, chunks: UIMessageChunk<SeqlineMessageMetadata>[]): void {
    let emitted = this.emitted.get(block.id);
    const first = !emitted;
    emitted ??= { sent: 0, ended: false, inputAvailable: false };
    this.emitted.set(block.id, emitted);
    switch (block.type) {
      case 'text':
      case 'reasoning': {
        const delta = block.text.slice(emitted.sent);
        // A part ended with its step that still grows (an agent of its own going back to an
        // earlier step's block) goes on as a new part: the AI SDK refuses a delta after an end.
        if (first || (emitted.ended && delta.length > 0)) {
          emitted.ended = false;
          chunks.push({ type: `${block.type}-start`, id: block.id });
        }
        if (delta.length > 0) chunks.push({ type: `${block.type}-delta`, id: block.id, delta });
        emitted.sent = block.text.length;
        return;
      }
      case 'data': {
        if (block.data.length === 0 || block.data === emitted.data) return;
        emitted.data = block.data;
        chunks.push({ type: `data-${block.name}`, id: dataPartId(block), data: parseJson(block.data) });
        return;
      }
      case 'tool': {
        if (first) chunks.push({ type: 'tool-input-start', toolCallId: block.id, toolName: block.toolName });
        const delta = block.input.slice(emitted.sent);
        if (delta.length > 0 && !emitted.inputAvailable) chunks.push({ type: 'tool-input-delta', toolCallId: block.id, inputTextDelta: delta });
        emitted.sent = block.input.length;
        const inputDone = finished || block.output !== undefined || block.error !== undefined;
        if (inputDone && !emitted.inputAvailable) {
          emitted.inputAvailable = true;
          chunks.push({ type: 'tool-input-available', toolCallId: block.id, toolName: block.toolName, input: parseJson(block.input) ?? {} });
        }
        // Output and error replace each other: the one emitted last is what the chat shows, so a
        // value that comes back after the other one is emitted again.
        if (block.output !== undefined && block.output !== emitted.output) {
          emitted.output = block.output;
          emitted.error = undefined;
          chunks.push({ type: 'tool-output-available', toolCallId: block.id, output: parseJson(block.output) });
        } else if (block.error !== undefined && block.error !== emitted.error) {
          emitted.error = block.error;
          emitted.output = undefined;
          chunks.push({ type: 'tool-output-error', toolCallId: block.id, errorText: block.error });
        }
        return;
      }
    }
  }

  /** Ends a part still open: a text or reasoning part, a tool call whose input may still have been streaming. */
  private closeBlock(block: MessageBlock, chunks: UIMessageChunk<SeqlineMessageMetadata>[]): void {
    const emitted = this.emitted.get(block.id);
    if (!emitted) return;
    if ((block.type === 'text' || block.type === 'reasoning') && !emitted.ended) {
      emitted.ended = true;
      chunks.push({ type: `${block.type}-end`, id: block.id });
    } else if (block.type === 'tool' && !emitted.inputAvailable) {
      emitted.inputAvailable = true;
      chunks.push({ type: 'tool-input-available', toolCallId: block.id, toolName: block.toolName, input: parseJson(block.input) ?? {} });
    }
  }
}

function metadataOf(message: Message, status: Message['status']): SeqlineMessageMetadata {
  return { status, ...(status !== 'streaming' && message.error !== undefined ? { error: message.error } : {}), authorId: message.author.id };
}
