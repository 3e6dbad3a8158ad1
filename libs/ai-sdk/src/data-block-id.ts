/** A block id takes at most this many characters (as the protocol's schema says). */
const MAX_BLOCK_ID = 128;

/**
 * The block id of a data part. The AI SDK keys data parts by type and id, and pages often give one
 * the id of the tool call it belongs to; a message's blocks share one id space, where that id is
 * the tool call's already (the service refuses an append naming it with another type). So a data
 * part's block id names its type too.
 */
export function dataBlockId(name: string, id: string): string {
  return `data-${name}:${id}`.slice(0, MAX_BLOCK_ID);
}

/** The data part's own id back from its block (a block written without the type, by an earlier version, as it is). */
export function dataPartId(block: { name: string; id: string }): string {
  const prefix = `data-${block.name}:`;
  return block.id.startsWith(prefix) ? block.id.slice(prefix.length) : block.id;
}
