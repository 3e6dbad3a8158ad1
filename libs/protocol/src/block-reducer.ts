import type { BlockRef, MessageBlock } from './message-blocks.js';

/**
 * Applies one append to a message's blocks without changing the given array or its blocks (a
 * device applies events to copies, and renderers compare by identity). Returns the new list, or
 * undefined when the append does not fit: the id names a block of another type, tool or name.
 */
export function appendToBlocks(blocks: readonly MessageBlock[] | undefined, ref: BlockRef, delta: string): MessageBlock[] | undefined {
  const list = blocks ?? [];
  const index = list.findIndex((block) => block.id === ref.id);
  const current = index === -1 ? emptyBlock(ref) : list[index]!;
  if (!sameKind(current, ref)) return undefined;
  const next = withDelta(current, ref, delta);
  return index === -1 ? [...list, next] : list.map((block, i) => (i === index ? next : block));
}

const KNOWN_BLOCK_TYPES: ReadonlySet<string> = new Set<BlockRef['type']>(['text', 'reasoning', 'tool', 'data']);

/**
 * Whether this version knows the block type `ref` names. A newer service may stream types an
 * older device does not know: such appends are passed over (the message's text, its parts and
 * the cursor still move on), as unknown event types are.
 */
export function isKnownBlock(ref: BlockRef): boolean {
  return KNOWN_BLOCK_TYPES.has(ref.type);
}

/** Whether an append to `ref` fits the message's blocks (as `appendToBlocks` would take it), without building them. */
export function acceptsBlock(blocks: readonly MessageBlock[] | undefined, ref: BlockRef): boolean {
  const current = blocks?.find((block) => block.id === ref.id);
  return current === undefined || sameKind(current, ref);
}

/** Fields whose every append replaces the value instead of extending it: a tool's output or error (each replacing the other too), a data value. */
export function isSetWhole(ref: BlockRef | undefined): boolean {
  return ref?.type === 'data' || (ref?.type === 'tool' && (ref.field === 'output' || ref.field === 'error'));
}

/** Characters an append to `ref` takes out of the message: the value of a set-whole field it replaces (0 for one that extends). */
export function replacedChars(blocks: readonly MessageBlock[] | undefined, ref: BlockRef | undefined): number {
  if (!ref || !isSetWhole(ref)) return 0;
  const block = blocks?.find((candidate) => candidate.id === ref.id);
  if (block?.type === 'data' && ref.type === 'data') return block.data.length;
  // Output and error replace each other too (see withDelta).
  if (block?.type === 'tool' && ref.type === 'tool') return (block.output?.length ?? 0) + (block.error?.length ?? 0);
  return 0;
}

/** Whether an append to `ref` adds to the message's `text` (text blocks do; the others do not). */
export function isTextAppend(ref: BlockRef | undefined): boolean {
  return ref === undefined || ref.type === 'text';
}

/** Characters a message's blocks hold outside its `text` (text blocks are in `text` already). */
export function blockChars(blocks: readonly MessageBlock[] | undefined): number {
  let chars = 0;
  for (const block of blocks ?? []) {
    if (block.type === 'reasoning') chars += block.text.length;
    else if (block.type === 'tool') chars += block.input.length + (block.output?.length ?? 0) + (block.error?.length ?? 0);
    else if (block.type === 'data') chars += block.data.length;
  }
  return chars;
}

/**
 * Folds block fragments (what Postgres keeps: each flush adds the blocks it saw, which may repeat
 * an id) into one block per id, in order of first appearance, with the same rules as appends.
 */
export function foldBlocks(fragments: readonly MessageBlock[]): MessageBlock[] {
  let blocks: MessageBlock[] = [];
  for (const fragment of fragments) {
    for (const [ref, delta] of fragmentAppends(fragment)) blocks = appendToBlocks(blocks, ref, delta) ?? blocks;
  }
  return blocks;
}

function fragmentAppends(fragment: MessageBlock): [BlockRef, string][] {
  switch (fragment.type) {
    case 'text':
    case 'reasoning':
      return [[{ type: fragment.type, id: fragment.id }, fragment.text]];
    case 'data':
      return [[{ type: 'data', id: fragment.id, name: fragment.name }, fragment.data]];
    case 'tool': {
      const ref = { type: 'tool' as const, id: fragment.id, toolName: fragment.toolName };
      const appends: [BlockRef, string][] = [[{ ...ref, field: 'input' }, fragment.input]];
      if (fragment.output !== undefined) appends.push([{ ...ref, field: 'output' }, fragment.output]);
      if (fragment.error !== undefined) appends.push([{ ...ref, field: 'error' }, fragment.error]);
      return appends;
    }
    default:
      // A block type of a newer version, stored by it: passed over, as its appends are.
      return [];
  }
}


function emptyBlock(ref: BlockRef): MessageBlock {
  switch (ref.type) {
    case 'text':
    case 'reasoning':
      return { type: ref.type, id: ref.id, text: '' };
    case 'tool':
      return { type: 'tool', id: ref.id, toolName: ref.toolName, input: '' };
    case 'data':
      return { type: 'data', id: ref.id, name: ref.name, data: '' };
  }
}

function sameKind(block: MessageBlock, ref: BlockRef): boolean {
  if (block.type !== ref.type) return false;
  if (block.type === 'tool' && ref.type === 'tool') return block.toolName === ref.toolName;
  if (block.type === 'data' && ref.type === 'data') return block.name === ref.name;
  return true;
}

function withDelta(block: MessageBlock, ref: BlockRef, delta: string): MessageBlock {
  switch (block.type) {
    case 'text':
    case 'reasoning':
      return { ...block, text: block.text + delta };
    case 'data':
      // Data is a value, not a stream: the latest one stands.
      return { ...block, data: delta };
    case 'tool': {
      const field = ref.type === 'tool' ? (ref.field ?? 'input') : 'input';
      if (field === 'input') return { ...block, input: block.input + delta };
      // A tool ends one way: the later of output and error stands (a tool that streamed
      // preliminary output and then failed has failed), and the earlier one goes.
      const { output: _output, error: _error, ...call } = block;
      return field === 'output' ? { ...call, output: delta } : { ...call, error: delta };
    }
  }
}
