import type { Author, ParsedAgentCommand } from '@seqline/protocol';

/** Everything that can be written into a conversation: agent commands, what devices send, and what the service itself decides. */
export type IngestCommand =
  | ParsedAgentCommand
  | { type: 'message.post'; messageId: string; author: Author; text: string }
  | { type: 'message.cancel'; messageId: string; reason: string }
  /**
   * The service ends an answer whose producer went silent since `silentSince` (ISO-8601):
   * whoever produces it, so no epoch. Judged on the log, not on Postgres, which may lag.
   */
  | { type: 'message.expire'; messageId: string; error: string; silentSince: string };
