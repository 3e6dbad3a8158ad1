import { applyEvent, formatCursor, isTextAppend, type Message } from '@seqline/protocol';
import type { MessageState } from './records.js';
import type { LogEntry } from '@seqline/streams';

/** A conversation's messages as of log sequence `seq`. */
export interface ConversationState {
  conversationId: string;
  seq: number;
  messages: Map<string, MessageState>;
}

/** How many producers an answer remembers having been taken over from: takeovers are rare, and a row must stay small. */
export const MAX_FORMER_PRODUCERS = 32;

/** Remembers a producer an answer was taken from, so a start it retries later is fenced rather than taking the answer back. */
function rememberFormerProducer(message: MessageState, producerId: string): void {
  const former = message.formerProducers ?? [];
  if (former.includes(producerId)) return;
  message.formerProducers = [...former, producerId].slice(-MAX_FORMER_PRODUCERS);
}

/**
 * Applies a log entry with the same reducer devices use, keeping the sequences the server
 * tracks. Entries already reflected (a replay) change nothing; returns the touched message.
 */
export function applyEntry(state: ConversationState, entry: LogEntry, epoch: string): MessageState | undefined {
  if (entry.seq <= state.seq) return undefined;
  state.seq = entry.seq;
  if (entry.unknownType !== undefined) return undefined;
  const existing = state.messages.get(entry.event.messageId);
  if (existing && entry.seq <= existing.appliedSeq) return undefined;
  const applied = applyEvent(state.messages as Map<string, Message>, entry.event, formatCursor({ epoch, seq: entry.seq }));
  if (!applied) return undefined;
  const message = state.messages.get(entry.event.messageId)!;
  const event = entry.event;
  switch (event.type) {
    case 'message.created':
      message.createdSeq = entry.seq;
      message.partLengths = [];
      message.producerEpoch = 1;
      if (event.producerId !== undefined) message.producerId = event.producerId;
      break;
    case 'message.claimed':
      if (message.producerId !== undefined && message.producerId !== event.producerId) rememberFormerProducer(message, message.producerId);
      message.producerId = event.producerId;
      message.producerEpoch = event.epoch;
      break;
    case 'message.appended':
      // Lengths locate each part inside `text`; a part that went to another block takes none of it.
      message.partLengths.push(isTextAppend(event.block) ? event.delta.length : 0);
      break;
    case 'message.completed':
    case 'message.failed':
    case 'message.aborted':
      break;
    default: {
      const unreachable: never = event;
      return unreachable;
    }
  }
  message.appliedSeq = entry.seq;
  return message;
}
