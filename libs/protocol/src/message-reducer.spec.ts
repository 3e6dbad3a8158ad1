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

describe('applyEvent with typed blocks', () => {
  const typed = (part: number, delta: string, block: Extract<LogEvent, { type: 'message.appended' }>['block']): LogEvent => ({ type: 'message.appended', messageId: 'm', part, delta, block, at });
  const empty: LogEvent = { ...created, text: '' } as LogEvent;

  it('builds blocks in order of first appearance; text holds the text blocks only', () => {
    const messages = new Map<string, Message>();
    applyEvent(messages, empty, 'e-1');
    expect(applyEvent(messages, typed(1, 'Think', { type: 'reasoning', id: 'r' }), 'e-2')).toBe(true);
    expect(applyEvent(messages, typed(2, '{"q":', { type: 'tool', id: 'c1', toolName: 'lookup' }), 'e-3')).toBe(true);
    expect(applyEvent(messages, typed(3, 'ing', { type: 'reasoning', id: 'r' }), 'e-4')).toBe(true);
    expect(applyEvent(messages, typed(4, '"x"}', { type: 'tool', id: 'c1', toolName: 'lookup', field: 'input' }), 'e-5')).toBe(true);
    expect(applyEvent(messages, typed(5, '{"n":1}', { type: 'tool', id: 'c1', toolName: 'lookup', field: 'output' }), 'e-6')).toBe(true);
    expect(applyEvent(messages, typed(6, 'Hello', { type: 'text', id: 't' }), 'e-7')).toBe(true);
    expect(applyEvent(messages, typed(7, '{"a":1}', { type: 'data', id: 'd', name: 'weather' }), 'e-8')).toBe(true);
    expect(applyEvent(messages, typed(8, '{"a":2}', { type: 'data', id: 'd', name: 'weather' }), 'e-9')).toBe(true);
    expect(applyEvent(messages, append(9, ' world'), 'e-10')).toBe(true);
    expect(messages.get('m')).toMatchObject({
      text: 'Hello world',
      parts: 9,
      blocks: [
        { type: 'reasoning', id: 'r', text: 'Thinking' },
        { type: 'tool', id: 'c1', toolName: 'lookup', input: '{"q":"x"}', output: '{"n":1}' },
        { type: 'text', id: 't', text: 'Hello' },
        { type: 'data', id: 'd', name: 'weather', data: '{"a":2}' },
      ],
    });
  });

  it('refuses an append whose block id names another type or tool, and leaves plain messages without blocks', () => {
    const messages = new Map<string, Message>();
    applyEvent(messages, empty, 'e-1');
    applyEvent(messages, typed(1, 'a', { type: 'text', id: 'x' }), 'e-2');
    expect(applyEvent(messages, typed(2, 'b', { type: 'reasoning', id: 'x' }), 'e-3')).toBe(false);
    applyEvent(messages, typed(2, '{}', { type: 'tool', id: 'c', toolName: 'one' }), 'e-3');
    expect(applyEvent(messages, typed(3, '{}', { type: 'tool', id: 'c', toolName: 'two' }), 'e-4')).toBe(false);
    const plain = new Map<string, Message>();
    applyEvent(plain, created, 'e-1');
    applyEvent(plain, append(1, '!'), 'e-2');
    expect(plain.get('m')).not.toHaveProperty('blocks');
  });

  it('never changes the blocks array a caller holds (devices apply events to copies)', () => {
    const messages = new Map<string, Message>();
    applyEvent(messages, empty, 'e-1');
    applyEvent(messages, typed(1, 'a', { type: 'text', id: 't' }), 'e-2');
    const before = messages.get('m')!.blocks!;
    const copy = new Map([['m', { ...messages.get('m')! }]]);
    applyEvent(copy, typed(2, 'b', { type: 'text', id: 't' }), 'e-3');
    expect(before).toEqual([{ type: 'text', id: 't', text: 'a' }]);
    expect(copy.get('m')!.blocks).toEqual([{ type: 'text', id: 't', text: 'ab' }]);
  });

  it('passes over an append to a block type this version does not know, and goes on with the next', () => {
    const messages = new Map<string, Message>();
    applyEvent(messages, empty, 'e-1');
    applyEvent(messages, typed(1, 'Hello', { type: 'text', id: 't1' }), 'e-2');
    const unknown = typed(2, '{"x":1}', { type: 'chart', id: 'c1' } as unknown as Extract<LogEvent, { type: 'message.appended' }>['block']);
    expect(applyEvent(messages, unknown, 'e-3')).toBe(true);
    expect(applyEvent(messages, typed(3, ' world', { type: 'text', id: 't1' }), 'e-4')).toBe(true);
    expect(messages.get('m')).toMatchObject({ text: 'Hello world', parts: 3, blocks: [{ type: 'text', id: 't1', text: 'Hello world' }] });
  });
});
