import { acceptsBlock, blockChars, ErrorCode, MAX_BLOCKS_PER_MESSAGE, replacedChars, SeqlineError, type Author, type LogEvent } from '@seqline/protocol';
import type { MessageState } from '@seqline/persistence';
import type { IngestCommand } from './ingest-command.js';

export interface IngestLimits {
  deltaChars: number;
  messageChars: number;
}

/** What a command means against the current state: an event to write, or a repeat of one already written. */
export type Decision = { kind: 'write'; event: LogEvent; msgId: string } | { kind: 'duplicate'; seq: number };

/**
 * Validates a command against the conversation's current messages. Pure: the same state and
 * command always give the same decision, which is what makes retries idempotent.
 */
export function decide(
  conversationId: string,
  messages: ReadonlyMap<string, MessageState>,
  command: IngestCommand,
  limits: IngestLimits,
  now: Date,
): Decision {
  const at = now.toISOString();
  const message = messages.get(command.messageId);
  // Prompts share the stream's de-duplication window (`prompt.<conversation>.<message>`): `:` is in
  // no id, so no event's key can be a prompt's, as `<conversation>.<message>.<what>` could be for
  // a conversation named `prompt`. Keys of another version (a rolling upgrade) need not match:
  // the expected last sequence and the part numbers already tell a repeat.
  const msgId = (suffix: string): string => `log:${conversationId}.${command.messageId}.${suffix}`;
  switch (command.type) {
    case 'message.post': {
      if (message) {
        if (!sameAuthor(message, command.author)) throw new SeqlineError(ErrorCode.MessageExists, `message ${command.messageId} already exists with another author`);
        // A retry is the same post: the same id with other text (an edited question) is not one, and is never applied.
        if (message.text !== command.text) throw new SeqlineError(ErrorCode.MessageExists, `message ${command.messageId} already exists with other text; post an edited message under a new id`);
        return { kind: 'duplicate', seq: message.createdSeq };
      }
      requireFits(command.text.length, limits);
      return { kind: 'write', msgId: msgId('created'), event: { type: 'message.created', messageId: command.messageId, author: command.author, status: 'complete', text: command.text, at } };
    }
    case 'message.start': {
      const author = { role: 'agent' as const, id: command.agentId };
      const producerId = command.producerId;
      if (!message) {
        requireFits(command.text.length, limits);
        return {
          kind: 'write',
          msgId: msgId(`created.${producerId ?? command.agentId}`),
          event: { type: 'message.created', messageId: command.messageId, author, status: 'streaming', text: command.text, ...(producerId === undefined ? {} : { producerId }), at },
        };
      }
      if (!sameAuthor(message, author)) throw new SeqlineError(ErrorCode.MessageExists, `message ${command.messageId} already exists with another author`);
      // The same producer again (a retry), a finished answer (nothing left to take over), or an agent that names no producer: the answer's state, unchanged.
      if (message.status !== 'streaming' || producerId === message.producerId) return { kind: 'duplicate', seq: message.createdSeq };
      if (producerId === undefined) {
        // A producer that names itself holds the answer: one that names none cannot be it, and the
        // epoch in the reply would let it write beside the holder unfenced.
        throw new SeqlineError(ErrorCode.Fenced, `message ${command.messageId} is written by another producer (epoch ${message.producerEpoch}); a start without producerId cannot take it over`);
      }
      // A producer names one attempt: one that was taken over is that attempt's start sent again
      // (its agent cut off for longer than the prompt's ack wait), not a new attempt to let in.
      if (message.formerProducers?.includes(producerId)) {
        throw new SeqlineError(ErrorCode.Fenced, `message ${command.messageId} was taken over from producer ${producerId} (now epoch ${message.producerEpoch}); it cannot take the answer back`);
      }
      const epoch = message.producerEpoch + 1;
      return { kind: 'write', msgId: msgId(`claimed.${epoch}.${producerId}`), event: { type: 'message.claimed', messageId: command.messageId, producerId, epoch, at } };
    }
    case 'message.append': {
      const current = requireMessage(message, command.messageId);
      requireProducer(current, command.epoch);
      if (command.part <= current.parts) {
        const applied = partText(current, command.part);
        // An empty text means the part went to a reasoning, tool or data block, whose deltas are not kept apart: a retry is not compared.
        if (applied === undefined || applied === '' || applied === command.delta) return { kind: 'duplicate', seq: current.appliedSeq };
        throw new SeqlineError(ErrorCode.PartConflict, `part ${command.part} of message ${command.messageId} was already applied with other text; continue with part ${current.parts + 1}`);
      }
      requireStreaming(current);
      // Set-whole values add no characters over the value they replace, and block ids and names
      // count none: parts and blocks are bounded apart, or one message could grow without bound.
      // Before the order: a part past the bound is never valid, and is not worth a look at the log.
      if (command.part > limits.messageChars) {
        throw new SeqlineError(ErrorCode.MessageTooLarge, `message ${command.messageId} would exceed ${limits.messageChars} parts`);
      }
      if (command.part !== current.parts + 1) {
        throw new SeqlineError(ErrorCode.PartOutOfOrder, `part ${command.part} of message ${command.messageId} arrived before part ${current.parts + 1}`);
      }
      if (command.delta.length > limits.deltaChars) {
        throw new SeqlineError(ErrorCode.DeltaTooLarge, `delta is ${command.delta.length} characters; the limit is ${limits.deltaChars}`);
      }
      if (command.block && (current.blocks?.length ?? 0) >= MAX_BLOCKS_PER_MESSAGE && !current.blocks!.some((block) => block.id === command.block!.id)) {
        throw new SeqlineError(ErrorCode.MessageTooLarge, `message ${command.messageId} would exceed ${MAX_BLOCKS_PER_MESSAGE} blocks`);
      }
      // A set-whole value replaces the one before: only the difference counts.
      if (current.text.length + blockChars(current.blocks) - replacedChars(current.blocks, command.block) + command.delta.length > limits.messageChars) {
        throw new SeqlineError(ErrorCode.MessageTooLarge, `message ${command.messageId} would exceed ${limits.messageChars} characters`);
      }
      if (command.block && !acceptsBlock(current.blocks, command.block)) {
        throw new SeqlineError(ErrorCode.ValidationFailed, `block ${command.block.id} of message ${command.messageId} already exists with another type, tool or name`);
      }
      return {
        kind: 'write',
        msgId: msgId(`part.${command.part}.${current.producerEpoch}`),
        event: { type: 'message.appended', messageId: command.messageId, part: command.part, delta: command.delta, ...(command.block ? { block: command.block } : {}), at },
      };
    }
    case 'message.complete': {
      const current = requireMessage(message, command.messageId);
      requireProducer(current, command.epoch);
      if (current.status === 'complete') return { kind: 'duplicate', seq: current.appliedSeq };
      requireStreaming(current);
      return { kind: 'write', msgId: msgId(`completed.${current.producerEpoch}`), event: { type: 'message.completed', messageId: command.messageId, at } };
    }
    case 'message.fail': {
      const current = requireMessage(message, command.messageId);
      requireProducer(current, command.epoch);
      if (current.status === 'failed' && current.error === command.error) return { kind: 'duplicate', seq: current.appliedSeq };
      requireStreaming(current);
      return { kind: 'write', msgId: msgId(`failed.${current.producerEpoch}`), event: { type: 'message.failed', messageId: command.messageId, error: command.error, at } };
    }
    case 'message.expire': {
      const current = requireMessage(message, command.messageId);
      requireStreaming(current);
      // The state here is the log's (a write on stale state is refused and decided again), so this sees every recent event.
      if (current.updatedAt >= command.silentSince) throw new AnswerStillActive(command.messageId, current.updatedAt);
      return { kind: 'write', msgId: msgId(`failed.expired.${current.appliedSeq}`), event: { type: 'message.failed', messageId: command.messageId, error: command.error, at } };
    }
    case 'message.cancel': {
      const current = requireMessage(message, command.messageId);
      if (current.status === 'aborted') return { kind: 'duplicate', seq: current.appliedSeq };
      requireStreaming(current);
      return { kind: 'write', msgId: msgId('aborted'), event: { type: 'message.aborted', messageId: command.messageId, reason: command.reason, at } };
    }
    default: {
      const unreachable: never = command;
      throw new Error(`unhandled command ${JSON.stringify(unreachable)}`);
    }
  }
}

/** An answer the service meant to end as abandoned had an event after all: it is left streaming. */
export class AnswerStillActive extends Error {
  constructor(
    messageId: string,
    /** When its last event was written (ISO 8601). */
    readonly lastEventAt: string,
  ) {
    super(`message ${messageId} had an event at ${lastEventAt}`);
    this.name = 'AnswerStillActive';
  }
}

function sameAuthor(message: MessageState, author: Author): boolean {
  return message.author.role === author.role && message.author.id === author.id;
}

function requireFits(chars: number, limits: IngestLimits): void {
  if (chars > limits.messageChars) throw new SeqlineError(ErrorCode.MessageTooLarge, `message text is ${chars} characters; the limit is ${limits.messageChars}`);
}

/**
 * Commands that name an epoch must name the answer's current one. Once an answer has been taken
 * over, commands that name none are refused too: they cannot show they come from the new producer.
 */
function requireProducer(message: MessageState, epoch: number | undefined): void {
  if (epoch === undefined ? message.producerEpoch === 1 : epoch === message.producerEpoch) return;
  throw new SeqlineError(ErrorCode.Fenced, `message ${message.id} is written by another producer now (epoch ${message.producerEpoch}); stop writing to it`);
}

/** The text part `part` added ('' for a part that went to a non-text block), or undefined for a row from before part lengths were kept. */
export function partText(message: MessageState, part: number): string | undefined {
  const lengths = message.partLengths;
  if (lengths.length !== message.parts || part < 1 || part > lengths.length) return undefined;
  let end = message.text.length;
  for (let i = lengths.length - 1; i >= part; i--) end -= lengths[i]!;
  return message.text.slice(end - lengths[part - 1]!, end);
}


function requireMessage(message: MessageState | undefined, id: string): MessageState {
  if (!message) throw new SeqlineError(ErrorCode.UnknownMessage, `message ${id} does not exist in this conversation`);
  return message;
}

function requireStreaming(message: MessageState): void {
  if (message.status !== 'streaming') {
    throw new SeqlineError(ErrorCode.MessageFinished, `message ${message.id} is already ${message.status}`, message.status);
  }
}
