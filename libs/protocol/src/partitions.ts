/**
 * Conversations are split into a fixed number of write partitions. Each partition is owned by
 * one server instance at a time, which answers agent commands for its conversations on
 * `<prefix>.writer.<partition>.<conversationId>`; sending there keeps one conversation's writes on
 * one instance. The number is part of the protocol: agents and servers must agree on it.
 */
export const WRITE_PARTITIONS = 32;

/**
 * The write partition of a conversation: 32-bit FNV-1a over the id's bytes (ids are ASCII),
 * modulo `WRITE_PARTITIONS`.
 *
 * @example partitionOf('demo') // 22 (FNV-1a of "demo" is 2935829814)
 */
export function partitionOf(conversationId: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < conversationId.length; i++) {
    hash ^= conversationId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % WRITE_PARTITIONS;
}
