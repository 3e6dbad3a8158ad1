import { appendToBlocks, blockChars, foldBlocks, replacedChars } from './block-reducer.js';
import type { MessageBlock } from './message-blocks.js';

describe('foldBlocks', () => {
  it('folds the fragments of several flushes into one block per id, in order of first appearance', () => {
    const fragments: MessageBlock[] = [
      { type: 'reasoning', id: 'r', text: 'Thi' },
      { type: 'tool', id: 'c', toolName: 'lookup', input: '{"q"' },
      { type: 'reasoning', id: 'r', text: 'nk' },
      { type: 'tool', id: 'c', toolName: 'lookup', input: ':1}', output: '"found"' },
      { type: 'data', id: 'd', name: 'n', data: '1' },
      { type: 'text', id: 't', text: 'Hi' },
      { type: 'data', id: 'd', name: 'n', data: '2' },
    ];
    expect(foldBlocks(fragments)).toEqual([
      { type: 'reasoning', id: 'r', text: 'Think' },
      { type: 'tool', id: 'c', toolName: 'lookup', input: '{"q":1}', output: '"found"' },
      { type: 'data', id: 'd', name: 'n', data: '2' },
      { type: 'text', id: 't', text: 'Hi' },
    ]);
  });

  it('passes over fragments of a block type a newer version stored', () => {
    const fragments = [{ type: 'chart', id: 'c1', spec: 'bars' }, { type: 'text', id: 't', text: 'Hi' }] as unknown as MessageBlock[];
    expect(foldBlocks(fragments)).toEqual([{ type: 'text', id: 't', text: 'Hi' }]);
  });

  it('keeps the later of a tool\'s output and error: a tool that streamed preliminary output and then failed has failed', () => {
    const call = { type: 'tool' as const, id: 'c', toolName: 'search' };
    let blocks = appendToBlocks([], { ...call, field: 'input' }, '{}')!;
    blocks = appendToBlocks(blocks, { ...call, field: 'output' }, '"10 %"')!;
    expect(replacedChars(blocks, { ...call, field: 'error' })).toBe(6);
    blocks = appendToBlocks(blocks, { ...call, field: 'error' }, 'boom')!;
    expect(blocks).toEqual([{ type: 'tool', id: 'c', toolName: 'search', input: '{}', error: 'boom' }]);
    expect(blockChars(blocks)).toBe(6);
    // The same over flushes, as Postgres folds them.
    expect(foldBlocks([{ type: 'tool', id: 'c', toolName: 'search', input: '{}', output: '"10 %"' }, { type: 'tool', id: 'c', toolName: 'search', input: '', error: 'boom' }])).toEqual(blocks);
  });

  it('counts the characters held outside the text', () => {
    expect(blockChars([{ type: 'text', id: 't', text: 'abc' }, { type: 'reasoning', id: 'r', text: 'xy' }, { type: 'tool', id: 'c', toolName: 'n', input: '{}', error: 'e' }])).toBe(5);
  });
});
