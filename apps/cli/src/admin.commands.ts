import { toPublicMessage } from '@seqline/persistence';
import type { ConversationRecord } from '@seqline/persistence';
import type { Message } from '@seqline/protocol';
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

/** A conversation's messages as Postgres holds them, in log order; null for an unknown conversation. */
export async function history(context: CliContext, conversationId: string, epoch: string): Promise<Message[] | null> {
  if (!(await context.conversations.exists(conversationId))) return null;
  const all: Message[] = [];
  for (let after = 0; ; ) {
    const page = await context.messages.page(conversationId, after, PAGE, epoch);
    all.push(...page.map(toPublicMessage));
    if (page.length < PAGE) return all;
    after = page.at(-1)!.createdSeq;
  }
}
