import { MAX_BLOCK_ID } from '@seqline/protocol';

/**
 * The block id of a data part. The AI SDK keys data parts by type and id, and pages often give one
 * the id of the tool call it belongs to; a message's blocks share one id space, where that id is
 * the tool call's already (the service refuses an append naming it with another type). So a data
 * part's block id names its type too.
 */
export function dataBlockId(name: string, id: string): string {
  const full = `data-${name}:${id}`;
  if (full.length <= MAX_BLOCK_ID) return full;
  // Cut, two long ids alike in their first characters (URLs, paths) would be one block, the
  // second part replacing the first: the cut keeps a hash of the whole to tell them apart.
  const hash = fnv1a64(full);
  let cut = MAX_BLOCK_ID - hash.length - 1;
  // Not between the halves of a surrogate pair: half an emoji is no text, and the service refuses it.
  const last = full.charCodeAt(cut - 1);
  if (last >= 0xd800 && last <= 0xdbff) cut--;
  return `${full.slice(0, cut)}~${hash}`;
}

/** FNV-1a over UTF-16 units, 64 bits as two 32-bit halves of different offsets: hex, 16 characters. */
function fnv1a64(text: string): string {
  let a = 0x811c9dc5;
  let b = 0x050c5d1f;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    a = Math.imul(a ^ unit, 0x01000193) >>> 0;
    b = Math.imul(b ^ unit, 0x01000193) >>> 0;
  }
  return a.toString(16).padStart(8, '0') + b.toString(16).padStart(8, '0');
}

/** The data part's own id back from its block (a block written without the type, by an earlier version, as it is). */
export function dataPartId(block: { name: string; id: string }): string {
  const prefix = `data-${block.name}:`;
  return block.id.startsWith(prefix) ? block.id.slice(prefix.length) : block.id;
}
