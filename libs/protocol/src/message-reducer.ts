import type { LogEvent } from './events.js';
import type { Message } from './message.js';
import { appendToBlocks, isKnownBlock, isTextAppend } from './block-reducer.js';

/**
 * Applies one log event to a conversation's messages, keyed by id. Used by the server to build
 * snapshots and by the device SDK to render; both must agree on the result.
 * Returns false when the event cannot apply (unknown message, or an append out of order).
 */
export function applyEvent(messages: Map<string, Message>, event: LogEvent, cursor: string): boolean {
  switch (event.type) {
    case 'message.created': {
      if (messages.has(event.messageId)) return false;
      messages.set(event.messageId, {
        id: event.messageId,
        author: event.author,
        status: event.status,
        text: event.text,
        createdAt: event.at,
        updatedAt: event.at,
        cursor,
        parts: 0,
      });
      return true;
    }
    case 'message.claimed': {
      // A new producer goes on with the same text: nothing a device shows changes.
      const message = messages.get(event.messageId);
      if (!message || message.status !== 'streaming') return false;
      message.updatedAt = event.at;
      return true;
    }
    case 'message.appended': {
      const message = messages.get(event.messageId);
      if (!message || message.status !== 'streaming' || event.part !== message.parts + 1) return false;
      if (event.block && isKnownBlock(event.block)) {
        const blocks = appendToBlocks(message.blocks, event.block, event.delta);
        if (!blocks) return false;
        message.blocks = blocks;
      }
      if (isTextAppend(event.block)) message.text += event.delta;
      message.parts = event.part;
      message.updatedAt = event.at;
      return true;
    }
    case 'message.completed':
    case 'message.aborted':
    case 'message.failed': {
      const message = messages.get(event.messageId);
      if (!message || message.status !== 'streaming') return false;
      message.status = finalStatus(event);
      if (event.type === 'message.failed') message.error = event.error;
      if (event.type === 'message.aborted') message.error = event.reason;
      message.updatedAt = event.at;
      return true;
    }
    default: {
      // A type from a newer version: it keeps its place in the chain and changes no message.
      const unknown: never = event;
      return unknown !== undefined;
    }
  }
}

function finalStatus(event: LogEvent & { type: 'message.completed' | 'message.aborted' | 'message.failed' }): Message['status'] {
  switch (event.type) {
    case 'message.completed':
      return 'complete';
    case 'message.aborted':
      return 'aborted';
    case 'message.failed':
      return 'failed';
  }
}
