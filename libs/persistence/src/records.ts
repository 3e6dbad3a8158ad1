import { foldBlocks, formatCursor, type Message, type MessageBlock } from '@seqline/protocol';
import type { ArchivedMessage as ArchivedMessageRow, Conversation as ConversationRow, Message as MessageRow } from './generated/client.js';

export interface ConversationRecord {
  id: string;
  title: string | null;
  createdAt: string;
  updatedAt: string;
}

/** A message with the bookkeeping the server needs beside what devices see. */
export type MessageState = Message & {
  appliedSeq: number;
  createdSeq: number;
  /** Length of each applied part, in order (the persister holds only the parts it has not written yet). */
  partLengths: number[];
  producerId?: string;
  producerEpoch: number;
  /**
   * Producers this answer was taken over from, oldest first (see `rememberFormerProducer`). The
   * persister's states hold only those taken over since the row was read, which it appends.
   */
  formerProducers?: string[];
};

export function toConversationRecord(row: ConversationRow): ConversationRecord {
  return { id: row.id, title: row.title, createdAt: row.createdAt.toISOString(), updatedAt: row.updatedAt.toISOString() };
}

export function toMessageState(row: MessageRow, epoch: string): MessageState {
  return {
    ...toArchivedMessage({ ...row, logEpoch: epoch }),
    parts: row.parts,
    appliedSeq: Number(row.appliedSeq),
    createdSeq: Number(row.createdSeq),
    partLengths: row.partLengths,
    ...(row.producerId === null ? {} : { producerId: row.producerId }),
    producerEpoch: row.producerEpoch,
    ...(row.formerProducers.length === 0 ? {} : { formerProducers: row.formerProducers }),
  };
}

/** A message kept from an older log epoch, with the cursor it had in that log; the archive keeps no part count. */
export type ArchivedMessage = Omit<Message, 'parts'>;

/** What `messages` and `archived_messages` rows share, as devices and admins see it, with the cursor it has in `logEpoch`. */
export function toArchivedMessage(row: Pick<ArchivedMessageRow, 'id' | 'authorRole' | 'authorId' | 'status' | 'text' | 'blocks' | 'error' | 'createdAt' | 'updatedAt' | 'createdSeq' | 'logEpoch'>): ArchivedMessage {
  return {
    id: row.id,
    author: { role: row.authorRole as Message['author']['role'], id: row.authorId },
    status: row.status as Message['status'],
    text: row.text,
    ...blocksOf(row.blocks),
    ...(row.error === null ? {} : { error: row.error }),
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
    cursor: formatCursor({ epoch: row.logEpoch, seq: Number(row.createdSeq) }),
  };
}

/** Strips server bookkeeping for devices and admins. */
export function toPublicMessage(state: Message & Partial<Omit<MessageState, keyof Message>>): Message {
  const { appliedSeq: _applied, createdSeq: _created, partLengths: _lengths, producerId: _producer, producerEpoch: _epoch, formerProducers: _former, ...message } = state;
  return message;
}

/** The row's block fragments folded into blocks; no `blocks` key for a message without any, as before blocks existed. */
function blocksOf(stored: unknown): { blocks?: MessageBlock[] } {
  if (!Array.isArray(stored) || stored.length === 0) return {};
  // Only blocks of types a newer version stored: none to show, as for a device that passed over their appends.
  const blocks = foldBlocks(stored as MessageBlock[]);
  return blocks.length > 0 ? { blocks } : {};
}
