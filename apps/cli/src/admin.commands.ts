import { toPublicMessage } from '@seqline/persistence';
import type { ArchivedMessage, ConversationRecord } from '@seqline/persistence';
import { epochIsBefore, parseCursor, type Message } from '@seqline/protocol';
import type { CliContext } from './cli-context.js';

const PAGE = 500;

/** Every conversation, by id. */
export async function listConversations(context: CliContext): Promise<ConversationRecord[]> {
  const all: ConversationRecord[] = [];
  for (let after: string | undefined; ; ) {
    const page = await context.conversations.list(after, PAGE);
    all.push(...page);
    if (page.length < PAGE) return all;
    after = page.at(-1)!.id;
  }
}

/**
 * A conversation's messages as Postgres holds them, in log order, with the rows kept from older
 * log epochs first (each message's cursor names its epoch); null for an unknown conversation.
 */
export async function history(context: CliContext, conversationId: string, currentEpoch: string): Promise<(Message | ArchivedMessage)[] | null> {
  if (!(await context.conversations.exists(conversationId))) return null;
  // Rows not yet archived after the log was recreated still count in the conversation's own epoch.
  const epoch = (await context.messages.watermarks([conversationId])).get(conversationId)?.epoch ?? currentEpoch;
  const current: Message[] = [];
  for (let after = 0; ; ) {
    const { messages, more } = await context.messages.page(conversationId, after, PAGE, epoch);
    current.push(...messages.map(toPublicMessage));
    if (!more || messages.length === 0) break;
    after = messages.at(-1)!.createdSeq;
  }
  // Read after the rows: a row archived in between is found there, once (by its cursor), not lost.
  const shown = new Set(current.map((message) => message.cursor));
  const archived = (await context.messages.archived(conversationId)).filter((message) => !shown.has(message.cursor));
  // Sorted whole: rows archived after the first page were read are found among the archived ones,
  // after those the current epoch's pages already held.
  return [...archived, ...current].sort(inLogOrder);
}

/** Older epoch first, then by the event that created the message. */
function inLogOrder(a: { cursor: string }, b: { cursor: string }): number {
  const x = parseCursor(a.cursor);
  const y = parseCursor(b.cursor);
  if (!x || !y) return 0;
  if (x.epoch !== y.epoch) return epochIsBefore(x.epoch, y.epoch) ? -1 : 1;
  return x.seq - y.seq;
}
