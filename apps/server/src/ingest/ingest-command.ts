import type { Author, ParsedAgentCommand } from '@seqline/protocol';

/** Everything that can be written into a conversation: agent commands plus what devices send. */
export type IngestCommand =
  | ParsedAgentCommand
  | { type: 'message.post'; messageId: string; author: Author; text: string }
  | { type: 'message.cancel'; messageId: string; reason: string };
