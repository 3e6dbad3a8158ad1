import type { UIMessage } from 'ai';
import type { Message, MessageBlock, MessageStatus } from '@seqline/protocol';
import { dataPartId } from './data-block-id.js';
import { lastStepStart, stepStarts } from './answer-steps.js';

/** What every UI message made from a Seqline message carries in `metadata`. */
export interface SeqlineMessageMetadata {
  /** `streaming`, `complete`, `aborted` (a device stopped it) or `failed`. */
  status: MessageStatus;
  /** Why it was aborted or failed. */
  error?: string;
  authorId: string;
}

export type SeqlineUIMessage = UIMessage<SeqlineMessageMetadata>;
type UIPart = SeqlineUIMessage['parts'][number];

/**
 * A conversation's messages as the AI SDK's `UIMessage[]`, e.g. the initial `messages` of
 * `useChat`. Ids stay Seqline's, so an answer resumed later replaces its own message.
 *
 * @example
 * const chat = useChat({ id: conversationId, transport, messages: toUIMessages(subscription.messages), resume: true });
 */
export function toUIMessages(messages: readonly Message[]): SeqlineUIMessage[] {
  return messages.map(toUIMessage);
}

export function toUIMessage(message: Message): SeqlineUIMessage {
  const blocks = messageBlocks(message);
  const parts: UIPart[] = [];
  // An answer's parts in steps, as the AI SDK assembles them; only the last step can still be streaming.
  if (message.author.role === 'agent') {
    const starts = stepStarts(blocks);
    const last = lastStepStart(starts);
    blocks.forEach((block, index) => {
      if (starts.has(index)) parts.push({ type: 'step-start' });
      parts.push(toUIPart(block, message.status === 'streaming' && index >= last));
    });
  } else {
    for (const block of blocks) parts.push(toUIPart(block, false));
  }
  return {
    id: message.id,
    role: message.author.role === 'agent' ? 'assistant' : message.author.role,
    metadata: { status: message.status, ...(message.error === undefined ? {} : { error: message.error }), authorId: message.author.id },
    parts,
  };
}

/**
 * A message's typed parts; a message written as plain text (an agent that sends no blocks) is
 * one text part, whose id is fixed so a live stream and the history agree on it.
 */
export function messageBlocks(message: Message): MessageBlock[] {
  if (message.blocks && message.blocks.length > 0) return message.blocks;
  return message.text.length > 0 ? [{ type: 'text', id: PLAIN_TEXT_ID, text: message.text }] : [];
}

export const PLAIN_TEXT_ID = 'text';

/** The JSON a tool or data block holds, or the raw text while it is still partial. */
export function parseJson(text: string | undefined): unknown {
  if (text === undefined || text.length === 0) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function toUIPart(block: MessageBlock, streaming: boolean): UIPart {
  const state = streaming ? 'streaming' : 'done';
  switch (block.type) {
    case 'text':
      return { type: 'text', text: block.text, state };
    case 'reasoning':
      return { type: 'reasoning', text: block.text, state };
    case 'data':
      return { type: `data-${block.name}`, id: dataPartId(block), data: parseJson(block.data) } as UIPart;
    case 'tool': {
      const base = { type: `tool-${block.toolName}`, toolCallId: block.id } as const;
      if (block.output !== undefined) return { ...base, state: 'output-available', input: parseJson(block.input), output: parseJson(block.output) } as UIPart;
      if (block.error !== undefined) return { ...base, state: 'output-error', input: parseJson(block.input), errorText: block.error } as UIPart;
      if (streaming) return { ...base, state: 'input-streaming', input: parseJson(block.input) } as UIPart;
      return { ...base, state: 'input-available', input: parseJson(block.input) } as UIPart;
    }
  }
}
