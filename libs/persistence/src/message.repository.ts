import type { PrismaService } from './prisma.service.js';
import { toMessageState, type MessageState } from './records.js';
import { Prisma } from './generated/client.js';

export interface ConversationSnapshotRows {
  /** Every event of the conversation up to this stream sequence is reflected in `messages`. */
  appliedSeq: number;
  messages: MessageState[];
}

/** A message row to write, with the stream sequence of the last event it reflects. */
export interface MessageWrite {
  conversationId: string;
  state: MessageState;
  isNew: boolean;
}

export class MessageRepository {
  constructor(private readonly prisma: PrismaService) {}

  /** History in log order; `afterSeq` is the creation sequence of the previous page's last message. */
  async page(conversationId: string, afterSeq: number, limit: number, epoch: string): Promise<MessageState[]> {
    const rows = await this.prisma.message.findMany({
      where: { conversationId, createdSeq: { gt: BigInt(afterSeq) } },
      orderBy: { createdSeq: 'asc' },
      take: limit,
    });
    return rows.map((row) => toMessageState(row, epoch));
  }

  /** All messages and the watermark they are consistent with, read in one snapshot; null for an unknown conversation. */
  async snapshot(conversationId: string, epoch: string): Promise<ConversationSnapshotRows | null> {
    const [conversation, rows] = await this.prisma.$transaction(
      [
        this.prisma.conversation.findUnique({ where: { id: conversationId }, select: { appliedSeq: true } }),
        this.prisma.message.findMany({ where: { conversationId }, orderBy: { createdSeq: 'asc' } }),
      ],
      { isolationLevel: Prisma.TransactionIsolationLevel.RepeatableRead },
    );
    if (!conversation) return null;
    return { appliedSeq: Number(conversation.appliedSeq), messages: rows.map((row) => toMessageState(row, epoch)) };
  }

  /** The current rows of the given messages, to apply a batch of events onto. */
  async load(keys: { conversationId: string; id: string }[], epoch: string): Promise<Map<string, MessageState>> {
    const found = new Map<string, MessageState>();
    if (keys.length === 0) return found;
    const rows = await this.prisma.message.findMany({
      where: { OR: keys.map((key) => ({ conversationId: key.conversationId, id: key.id })) },
    });
    for (const row of rows) found.set(messageKey(row.conversationId, row.id), toMessageState(row, epoch));
    return found;
  }

  /** Conversations among `ids` that exist. */
  async existingConversations(ids: string[]): Promise<Set<string>> {
    const rows = await this.prisma.conversation.findMany({ where: { id: { in: ids } }, select: { id: true } });
    return new Set(rows.map((row) => row.id));
  }

  /** Writes a batch of changed messages and advances each conversation's watermark, atomically. */
  async write(changes: MessageWrite[], watermarks: Map<string, number>): Promise<void> {
    const created = changes.filter((change) => change.isNew).map((change) => rowOf(change));
    const updated = changes.filter((change) => !change.isNew);
    await this.prisma.$transaction([
      ...(created.length > 0 ? [this.prisma.message.createMany({ data: created, skipDuplicates: true })] : []),
      ...updated.map((change) => {
        const { conversationId, id, ...data } = rowOf(change);
        return this.prisma.message.update({ where: { conversationId_id: { conversationId, id } }, data });
      }),
      ...[...watermarks].map(([id, seq]) =>
        this.prisma.conversation.updateMany({ where: { id, appliedSeq: { lt: BigInt(seq) } }, data: { appliedSeq: BigInt(seq) } }),
      ),
    ]);
  }
}

export function messageKey(conversationId: string, id: string): string {
  return `${conversationId}\u0000${id}`;
}

function rowOf(change: MessageWrite) {
  const { state } = change;
  return {
    conversationId: change.conversationId,
    id: state.id,
    authorRole: state.author.role,
    authorId: state.author.id,
    status: state.status,
    text: state.text,
    parts: state.parts,
    error: state.error ?? null,
    createdSeq: BigInt(state.createdSeq),
    appliedSeq: BigInt(state.appliedSeq),
    createdAt: new Date(state.createdAt),
    updatedAt: new Date(state.updatedAt),
  };
}
