import { z } from 'zod';
import { AgentReplySchema, ReceivedAgentReplySchema } from './agent-commands.js';
import { ErrorCode, SeqlineError } from './errors.js';
import { ID_PATTERN } from './limits.js';

/** nats-server's default `max_payload`, for a connection that has not told its own yet. */
export const NATS_DEFAULT_MAX_PAYLOAD = 1024 * 1024;

/** The most commands one batch may carry. */
export const MAX_BATCH_COMMANDS = 64;

const NEWLINE = 0x0a;
const SPACE = 0x20;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One command of a batch: its conversation and the command's JSON, as a single request would carry it. */
export interface BatchedCommand {
  conversationId: string;
  data: Uint8Array;
}

/**
 * A batch of commands for conversations one instance writes, sent as one request to
 * `<prefix>.writer.batch.<writer>`: one line per command, `<conversationId> <command JSON>\n`.
 * JSON never holds a raw line break, so a line is always one whole command, and the instance
 * checks each command's size and shape exactly as it checks a command sent on its own.
 */
export function encodeCommandBatch(commands: readonly BatchedCommand[]): Uint8Array {
  let length = 0;
  const ids = commands.map((command) => encoder.encode(command.conversationId));
  for (let i = 0; i < commands.length; i++) length += ids[i]!.length + 1 + commands[i]!.data.length + 1;
  const bytes = new Uint8Array(length);
  let at = 0;
  for (let i = 0; i < commands.length; i++) {
    bytes.set(ids[i]!, at);
    at += ids[i]!.length;
    bytes[at++] = SPACE;
    bytes.set(commands[i]!.data, at);
    at += commands[i]!.data.length;
    bytes[at++] = NEWLINE;
  }
  return bytes;
}

/**
 * The lines of a batch. A line that is not `<conversationId> <command>` becomes a refusal in its
 * own place, so the other commands are still answered in order; a batch that is empty or holds
 * more than `MAX_BATCH_COMMANDS` lines is refused as a whole.
 */
export function splitCommandBatch(bytes: Uint8Array): Array<BatchedCommand | SeqlineError> {
  const lines: Uint8Array[] = [];
  let start = 0;
  while (start < bytes.length) {
    let end = bytes.indexOf(NEWLINE, start);
    if (end === -1) end = bytes.length;
    if (end > start) lines.push(bytes.subarray(start, end));
    start = end + 1;
    if (lines.length > MAX_BATCH_COMMANDS) break;
  }
  if (lines.length === 0) throw new SeqlineError(ErrorCode.ValidationFailed, 'the batch holds no command');
  if (lines.length > MAX_BATCH_COMMANDS) throw new SeqlineError(ErrorCode.ValidationFailed, `a batch holds at most ${MAX_BATCH_COMMANDS} commands`);
  return lines.map((line, index) => {
    const space = line.indexOf(SPACE);
    const conversationId = space === -1 ? '' : decoder.decode(line.subarray(0, space));
    if (!ID_PATTERN.test(conversationId)) {
      return new SeqlineError(ErrorCode.BadFrame, `command ${index + 1} of the batch does not start with a conversation id and a space`);
    }
    return { conversationId, data: line.subarray(space + 1) };
  });
}

/** The reply to a batch: one reply per line, in the batch's order. */
export const BatchReplySchema = z.object({ replies: z.array(AgentReplySchema) });
export type BatchReply = z.infer<typeof BatchReplySchema>;
export const ReceivedBatchReplySchema = z.object({ replies: z.array(ReceivedAgentReplySchema) });
