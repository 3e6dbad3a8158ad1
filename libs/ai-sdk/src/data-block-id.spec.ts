import { illFormedAt, type Message } from '@seqline/protocol';
import { dataBlockId, dataPartId } from './data-block-id.js';
import { toUIMessage } from './ui-messages.js';

describe('data part block ids', () => {
  it('name the part type, so a data part with its tool call id does not meet the tool call, and devices get the part back with its own id', () => {
    expect(dataBlockId('weather', 'call-1')).toBe('data-weather:call-1');
    const message: Message = {
      id: 'a',
      author: { role: 'agent', id: 'bot' },
      status: 'complete',
      text: '',
      parts: 2,
      cursor: 'e-1',
      createdAt: '2026-12-06T00:00:00.000Z',
      updatedAt: '2026-12-06T00:00:00.000Z',
      blocks: [
        { type: 'tool', id: 'call-1', toolName: 'weather', input: '{}', output: '{"celsius":21}' },
        { type: 'data', id: dataBlockId('weather', 'call-1'), name: 'weather', data: '{"celsius":21}' },
        // Written by an earlier version, without the type.
        { type: 'data', id: 'old', name: 'status', data: '"ok"' },
      ],
    };
    expect(toUIMessage(message).parts.filter((part) => part.type.startsWith('data-'))).toEqual([
      { type: 'data-weather', id: 'call-1', data: { celsius: 21 } },
      { type: 'data-status', id: 'old', data: 'ok' },
    ]);
    expect(dataPartId({ name: 'weather', id: 'data-other:x' })).toBe('data-other:x');
  });

  it('keep two long ids apart that share their first 128 characters, and stay within a block id', () => {
    const common = `https://example.com/${'x'.repeat(120)}`;
    const a = dataBlockId('source', `${common}/a`);
    const b = dataBlockId('source', `${common}/b`);
    expect(a).not.toBe(b);
    expect([a.length, b.length]).toEqual([128, 128]);
    expect(a.startsWith(`data-source:${common}`.slice(0, 100))).toBe(true);
    expect(dataBlockId('source', `${common}/a`)).toBe(a);
    expect(dataBlockId('n'.repeat(128), 'id').length).toBe(128);
  });

  it('never cuts a long id between the halves of an emoji, which the service would refuse', () => {
    // `data-x:` and 103 more characters end right before the cut, at the emoji's first half.
    const id = dataBlockId('x', `${'a'.repeat(103)}😀${'b'.repeat(40)}`);
    expect(illFormedAt(id)).toBeUndefined();
    expect(id.length).toBeLessThanOrEqual(128);
  });
});
