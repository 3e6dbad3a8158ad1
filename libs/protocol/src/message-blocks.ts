import { z } from 'zod';
import { MAX_BLOCK_ID } from './limits.js';

/**
 * Typed parts of a message ("blocks": `parts` already counts a message's appends). An append
 * that names a block adds its delta to that block; one that names none is plain text, as
 * before blocks existed. Browser-safe: the device SDK renders with these types.
 */
export const BLOCK_TYPES = ['text', 'reasoning', 'tool', 'data'] as const;
export type BlockType = (typeof BLOCK_TYPES)[number];

const BlockIdSchema = z.string().min(1).max(MAX_BLOCK_ID);
const NameSchema = z.string().min(1).max(MAX_BLOCK_ID);

/** Which block an append writes to, sent with the append (command and event). */
export const BlockRefSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text'), id: BlockIdSchema }),
  z.object({ type: z.literal('reasoning'), id: BlockIdSchema }),
  z.object({
    type: z.literal('tool'),
    /** The tool call's id. */
    id: BlockIdSchema,
    toolName: NameSchema,
    /** `input` (default): the call's arguments, JSON text, appended; `output` / `error`: the result, JSON text / a message, set whole. */
    field: z.enum(['input', 'output', 'error']).optional(),
  }),
  /** Application data (the AI SDK's `data-<name>` parts): each append sets the block's JSON text whole. */
  z.object({ type: z.literal('data'), id: BlockIdSchema, name: NameSchema }),
]);
export type BlockRef = z.infer<typeof BlockRefSchema>;

export const MessageBlockSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text'), id: z.string(), text: z.string() }),
  z.object({ type: z.literal('reasoning'), id: z.string(), text: z.string() }),
  z.object({
    type: z.literal('tool'),
    id: z.string(),
    toolName: z.string(),
    /** The arguments as JSON text (complete once `output` or `error` is set, or the message ended). */
    input: z.string(),
    /** The result as JSON text. */
    output: z.string().optional(),
    error: z.string().optional(),
  }),
  z.object({ type: z.literal('data'), id: z.string(), name: z.string(), data: z.string() }),
]);
export type MessageBlock = z.infer<typeof MessageBlockSchema>;
