import { z } from 'zod';

/** A block fragment as Postgres keeps it (see `foldBlocks`), holding nothing this version does not know. */
const KnownFragmentSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('text'), id: z.string(), text: z.string() }),
  z.strictObject({ type: z.literal('reasoning'), id: z.string(), text: z.string() }),
  z.strictObject({ type: z.literal('tool'), id: z.string(), toolName: z.string(), input: z.string(), output: z.string().optional(), error: z.string().optional() }),
  z.strictObject({ type: z.literal('data'), id: z.string(), name: z.string(), data: z.string() }),
]);

/**
 * Whether this version folds `fragment` without losing anything of it: a known type with only
 * fields it knows, each of the type it writes. Blocks folded from fragments it does not (a newer
 * version stored them) must not be written back in their place.
 */
export function foldsWhole(fragment: unknown): boolean {
  return KnownFragmentSchema.safeParse(fragment).success;
}
