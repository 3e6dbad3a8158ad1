import { ErrorCode, SeqlineError, type LogEvent } from '@seqline/protocol';
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
  const msgId = (suffix: string): string => `${conversationId}.${command.messageId}.${suffix}`;
  switch (command.type) {
    case 'message.start':
    case 'message.post': {
      const author = command.type === 'message.start' ? { role: 'agent' as const, id: command.agentId } : command.author;
      if (message) {
        if (message.author.role === author.role && message.author.id === author.id) return { kind: 'duplicate', seq: message.createdSeq };
        throw new SeqlineError(ErrorCode.MessageExists, `message ${command.messageId} already exists with another author`);
      }
      if (command.text.length > limits.messageChars) {
        throw new SeqlineError(ErrorCode.MessageTooLarge, `message text is ${command.text.length} characters; the limit is ${limits.messageChars}`);
      }
      const status = command.type === 'message.start' ? 'streaming' : 'complete';
      return { kind: 'write', msgId: msgId('created'), event: { type: 'message.created', messageId: command.messageId, author, status, text: command.text, at } };
    }
    case 'message.append': {
      const current = requireMessage(message, command.messageId);
      if (command.part <= current.parts) return { kind: 'duplicate', seq: current.appliedSeq };
      requireStreaming(current);
      if (command.part !== current.parts + 1) {
        throw new SeqlineError(ErrorCode.PartOutOfOrder, `part ${command.part} of message ${command.messageId} arrived before part ${current.parts + 1}`);
      }
      if (command.delta.length > limits.deltaChars) {
        throw new SeqlineError(ErrorCode.DeltaTooLarge, `delta is ${command.delta.length} characters; the limit is ${limits.deltaChars}`);
      }
      if (current.text.length + command.delta.length > limits.messageChars) {
        throw new SeqlineError(ErrorCode.MessageTooLarge, `message ${command.messageId} would exceed ${limits.messageChars} characters`);
      }
      return { kind: 'write', msgId: msgId(`part.${command.part}`), event: { type: 'message.appended', messageId: command.messageId, part: command.part, delta: command.delta, at } };
    }
    case 'message.complete': {
      const current = requireMessage(message, command.messageId);
      if (current.status === 'complete') return { kind: 'duplicate', seq: current.appliedSeq };
      requireStreaming(current);
      return { kind: 'write', msgId: msgId('end'), event: { type: 'message.completed', messageId: command.messageId, at } };
    }
    case 'message.fail': {
      const current = requireMessage(message, command.messageId);
      if (current.status === 'failed') return { kind: 'duplicate', seq: current.appliedSeq };
      requireStreaming(current);
      return { kind: 'write', msgId: msgId('end'), event: { type: 'message.failed', messageId: command.messageId, error: command.error, at } };
    }
    case 'message.cancel': {
      const current = requireMessage(message, command.messageId);
      if (current.status === 'aborted') return { kind: 'duplicate', seq: current.appliedSeq };
      requireStreaming(current);
      return { kind: 'write', msgId: msgId('end'), event: { type: 'message.aborted', messageId: command.messageId, reason: command.reason, at } };
    }
    default: {
      const unreachable: never = command;
      throw new Error(`unhandled command ${JSON.stringify(unreachable)}`);
    }
  }
}

function requireMessage(message: MessageState | undefined, id: string): MessageState {
  if (!message) throw new SeqlineError(ErrorCode.UnknownMessage, `message ${id} does not exist in this conversation`);
  return message;
}

function requireStreaming(message: MessageState): void {
  if (message.status !== 'streaming') {
    throw new SeqlineError(ErrorCode.MessageFinished, `message ${message.id} is already ${message.status}`);
  }
}
