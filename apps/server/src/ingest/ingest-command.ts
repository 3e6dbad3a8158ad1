import { AgentCommandSchema, AuthorSchema, IdSchema } from '@seqline/protocol';
import { z } from 'zod';

/**
 * Everything that can be written into a conversation: agent commands, what devices send, and
 * what the service itself decides. Also what one instance hands another to write (see
 * `WriteRouter`), so it is a schema, checked again where it arrives.
 */
export const IngestCommandSchema = z.union([
  AgentCommandSchema,
  z.object({ type: z.literal('message.post'), messageId: IdSchema, author: AuthorSchema, text: z.string() }),
  z.object({ type: z.literal('message.cancel'), messageId: IdSchema, reason: z.string() }),
  /**
   * The service ends an answer whose producer went silent since `silentSince` (ISO-8601):
   * whoever produces it, so no epoch. Judged on the log, not on Postgres, which may lag.
   */
  z.object({ type: z.literal('message.expire'), messageId: IdSchema, error: z.string(), silentSince: z.string() }),
]);
export type IngestCommand = z.infer<typeof IngestCommandSchema>;
