import type { LogEvent } from './events.js';
import type { Message } from './message.js';
import { applyEvent } from './message-reducer.js';

const at = '2026-01-01T00:00:00.000Z';
const created: LogEvent = { type: 'message.created', messageId: 'm', author: { role: 'agent', id: 'a' }, status: 'streaming', text: 'Hi', at };
const append = (part: number, delta: string): LogEvent => ({ type: 'message.appended', messageId: 'm', part, delta, at });

describe('applyEvent', () => {
  it('builds the text from appends in part order and finishes the message', () => {
    const messages = new Map<string, Message>();
    expect(applyEvent(messages, created, 'e-1')).toBe(true);
    expect(applyEvent(messages, append(1, ' there'), 'e-2')).toBe(true);
    expect(applyEvent(messages, append(2, '!'), 'e-3')).toBe(true);
    expect(applyEvent(messages, { type: 'message.completed', messageId: 'm', at }, 'e-4')).toBe(true);
    expect(messages.get('m')).toMatchObject({ text: 'Hi there!', parts: 2, status: 'complete', cursor: 'e-1' });
  });

  it('refuses a repeated or skipped part, an unknown message, and anything after the end', () => {
    const messages = new Map<string, Message>();
    applyEvent(messages, created, 'e-1');
    applyEvent(messages, append(1, 'a'), 'e-2');
    expect(applyEvent(messages, append(1, 'a'), 'e-3')).toBe(false);
    expect(applyEvent(messages, append(3, 'c'), 'e-3')).toBe(false);
    expect(applyEvent(messages, { ...append(1, 'x'), messageId: 'other' }, 'e-3')).toBe(false);
    expect(applyEvent(messages, created, 'e-3')).toBe(false);
    expect(applyEvent(messages, { type: 'message.failed', messageId: 'm', error: 'boom', at }, 'e-4')).toBe(true);
    expect(applyEvent(messages, append(2, 'b'), 'e-5')).toBe(false);
    expect(applyEvent(messages, { type: 'message.aborted', messageId: 'm', reason: 'r', at }, 'e-6')).toBe(false);
    expect(messages.get('m')).toMatchObject({ text: 'Hia', status: 'failed', error: 'boom' });
  });
});
