import { epochIsBefore } from '@seqline/protocol';
import { foldsWhole } from './known-fragment.js';
import type { PrismaService } from './prisma.service.js';
import { BatchedReads, type BatchedReadsOptions } from './batched-reads.js';
import { MAX_FORMER_PRODUCERS } from './conversation-state.js';
import { toArchivedMessage, toMessageState, type ArchivedMessage, type MessageState } from './records.js';

/**
 * Prisma ends an interactive transaction after 5 s by default. A batch on a slow database, and
 * archiving or rebuilding a long history, can take longer: cut off, they would roll back and be
 * retried forever.
 */
const BATCH_TRANSACTION = { maxWait: 10_000, timeout: 30_000 };
const LONG_TRANSACTION = { maxWait: 10_000, timeout: 120_000 };
/** Text and parts a page of history holds at most (past its first message): a few answers at the largest message size. */
export const PAGE_BYTES = 4 * 1024 * 1024;

/**
 * A long transaction's statements may each take as long as the transaction may (archiving a long
 * history is one statement), not the connection's statement timeout: cut short, the same work
 * would be tried again, and cut short again, for good.
 */
async function allowLongStatements(tx: Tx): Promise<void> {
  await tx.$executeRawUnsafe(`SET LOCAL statement_timeout = ${LONG_TRANSACTION.timeout}`);
}

/** Snapshot reads: at most two statements at once (the pool serves the persister too), a few hundred conversations each. */
const SNAPSHOT_READS: BatchedReadsOptions = { maxBatch: 200, maxInFlight: 2 };

export interface ConversationSnapshotRows {
  /** Every event of the conversation up to this stream sequence is reflected in `messages`. */
  appliedSeq: number;
  /** The log epoch `appliedSeq` counts in; null before the first event was applied. */
  logEpoch: string | null;
  messages: MessageState[];
}

export interface Watermark {
  seq: number;
  /** Null before the conversation's first event was applied. */
  epoch: string | null;
}

/** Events of a conversation Postgres will never get: after `afterSeq`, up to and including `untilSeq`. */
export interface LogHole {
  conversationId: string;
  epoch: string;
  afterSeq: number;
  untilSeq: number;
  reason: 'retention' | 'undecodable' | 'fork';
}

/**
 * A message to write: a new row (`fromSeq` null, `state.text` the whole text), or an existing
 * row at `fromSeq` to which `state.text` is appended.
 */
export interface MessageWrite {
  conversationId: string;
  state: MessageState;
  fromSeq: number | null;
  /**
   * `state.blocks` is every block of the message, folded from the row's (read with `loadHeads`'s
   * `withBlocks`) and the batch's: it replaces the row's blocks instead of being appended to them.
   */
  wholeBlocks?: boolean;
}

export class MessageRepository {
  private readonly snapshotReads = new BatchedReads<string, SnapshotRow[]>((ids) => this.readSnapshots(ids), [], SNAPSHOT_READS);
  private readonly watermarkReads = new BatchedReads<string, Watermark | undefined>((ids) => this.watermarks(ids), undefined, SNAPSHOT_READS);

  constructor(private readonly prisma: PrismaService) {}

  /** History in log order; `afterSeq` is the creation sequence of the previous page's last message. */
  /**
   * Up to `limit` messages after `afterSeq`, in log order, and fewer once they hold `maxBytes` of
   * text and parts (always one): a page of long answers stays a size a response can carry. `more`:
   * a next page may hold messages.
   */
  async page(conversationId: string, afterSeq: number, limit: number, epoch: string, maxBytes = PAGE_BYTES): Promise<{ messages: MessageState[]; more: boolean }> {
    // Sizes first, so only the rows that fit are sent here: a text's length Postgres has without
    // reading it; parts are measured as they will be sent (their stored size is compressed, and
    // repetitive tool output would count for a fraction of itself).
    const sizes = await this.prisma.$queryRaw<{ bytes: bigint }[]>`
      SELECT (octet_length(m.text) + octet_length(m.blocks::text))::bigint AS bytes
      FROM messages m JOIN conversations c ON c.id = m.conversation_id
      WHERE m.conversation_id = ${conversationId} AND m.created_seq > ${afterSeq}::bigint AND (c.log_epoch IS NULL OR c.log_epoch = ${epoch})
      ORDER BY m.created_seq LIMIT ${limit}`;
    let fit = 0;
    for (let total = 0; fit < sizes.length; fit++) {
      total += Number(sizes[fit]!.bytes);
      if (fit > 0 && total > maxBytes) break;
    }
    if (fit === 0) return { messages: [], more: false };
    const rows = await this.prisma.message.findMany({
      // Rows of an older log epoch are about to be archived: their sequences mean nothing in this one.
      where: { conversationId, createdSeq: { gt: BigInt(afterSeq) }, conversation: { OR: [{ logEpoch: null }, { logEpoch: epoch }] } },
      orderBy: { createdSeq: 'asc' },
      take: fit,
    });
    return { messages: rows.map((row) => toMessageState(row, epoch)), more: fit < sizes.length || sizes.length === limit };
  }

  /** Rows kept from older log epochs (see `archiveOtherEpochs`), oldest epoch first, each in log order. */
  async archived(conversationId: string): Promise<ArchivedMessage[]> {
    const rows = await this.prisma.archivedMessage.findMany({ where: { conversationId }, orderBy: [{ logEpoch: 'asc' }, { createdSeq: 'asc' }] });
    return rows.map(toArchivedMessage);
  }

  /**
   * All messages and the watermark they are consistent with; null for an unknown conversation.
   * One statement sees one snapshot of the database, so the rows and the watermark agree
   * without a transaction. Conversations opened at the same moment share that statement.
   */
  async snapshot(conversationId: string, epoch: string): Promise<ConversationSnapshotRows | null> {
    const rows = await this.snapshotReads.load(conversationId);
    if (rows.length === 0) return null;
    const messages = rows
      .filter((row): row is SnapshotRow & { id: string } => row.id !== null)
      .map((row) =>
        toMessageState(
          {
            conversationId,
            id: row.id,
            authorRole: row.author_role!,
            authorId: row.author_id!,
            status: row.status!,
            text: row.text!,
            blocks: row.blocks ?? [],
            parts: row.parts!,
            partLengths: row.part_lengths!,
            producerId: row.producer_id,
            producerEpoch: row.producer_epoch!,
            formerProducers: row.former_producers ?? [],
            error: row.error,
            createdSeq: BigInt(row.created_seq!),
            appliedSeq: BigInt(row.applied_seq!),
            createdAt: row.created_at!,
            updatedAt: row.updated_at!,
          },
          epoch,
        ),
      );
    return { appliedSeq: Number(rows[0]!.conversation_applied_seq), logEpoch: rows[0]!.conversation_log_epoch, messages };
  }

  /** The snapshot rows of several conversations in one statement, by conversation (unknown ones absent). */
  private async readSnapshots(ids: string[]): Promise<Map<string, SnapshotRow[]>> {
    const rows = await this.prisma.$queryRaw<SnapshotRow[]>`
      SELECT c.id AS conversation_id, c.applied_seq::text AS conversation_applied_seq, c.log_epoch AS conversation_log_epoch, m.id, m.author_role, m.author_id, m.status, m.text, m.blocks, m.parts, m.error,
             m.part_lengths, m.producer_id, m.producer_epoch, m.former_producers, m.created_seq::text AS created_seq, m.applied_seq::text AS applied_seq, m.created_at, m.updated_at
      FROM conversations c
      LEFT JOIN messages m ON m.conversation_id = c.id
      WHERE c.id = ANY(${ids}::text[])
      ORDER BY c.id, m.created_seq`;
    const byConversation = new Map<string, SnapshotRow[]>();
    for (const row of rows) {
      const list = byConversation.get(row.conversation_id);
      if (list) list.push(row);
      else byConversation.set(row.conversation_id, [row]);
    }
    return byConversation;
  }

  /**
   * The current rows of the given messages, without their text, blocks or part lengths: the
   * persister applies events onto empty ones, which leaves exactly what to append.
   */
  /**
   * `withBlocks`: messages whose blocks are read too, folded; those this version folds without
   * losing anything of them are added to `foldedWhole` (the others come without blocks, as every
   * message does otherwise).
   */
  async loadHeads(
    keys: { conversationId: string; id: string }[],
    epoch: string,
    withBlocks: ReadonlySet<string> = new Set(),
    foldedWhole: Set<string> = new Set(),
  ): Promise<Map<string, MessageState>> {
    const found = new Map<string, MessageState>();
    if (keys.length === 0) return found;
    const rows = await this.prisma.$queryRaw<MessageHeadRow[]>`
      SELECT m.conversation_id, m.id, m.author_role, m.author_id, m.status, m.parts, m.error, m.producer_id, m.producer_epoch,
             m.created_seq::text AS created_seq, m.applied_seq::text AS applied_seq, m.created_at, m.updated_at,
             CASE WHEN k.with_blocks THEN m.blocks END AS blocks
      FROM messages m
      JOIN unnest(${keys.map((key) => key.conversationId)}::text[], ${keys.map((key) => key.id)}::text[],
                  ${keys.map((key) => withBlocks.has(messageKey(key.conversationId, key.id)))}::boolean[]) AS k(conversation_id, id, with_blocks)
        ON m.conversation_id = k.conversation_id AND m.id = k.id`;
    for (const row of rows) {
      const key = messageKey(row.conversation_id, row.id);
      const blocks = Array.isArray(row.blocks) && row.blocks.every(foldsWhole) ? row.blocks : undefined;
      if (blocks) foldedWhole.add(key);
      const message = toMessageState(
        {
          conversationId: row.conversation_id,
          id: row.id,
          authorRole: row.author_role,
          authorId: row.author_id,
          status: row.status,
          text: '',
          // Folded (see toMessageState) when asked for: the batch sets a block's value whole.
          blocks: blocks ?? [],
          parts: row.parts,
          partLengths: [],
          producerId: row.producer_id,
          producerEpoch: row.producer_epoch,
          // Only the producers taken over from in this batch: the write appends them.
          formerProducers: [],
          error: row.error,
          createdSeq: BigInt(row.created_seq),
          appliedSeq: BigInt(row.applied_seq),
          createdAt: row.created_at,
          updatedAt: row.updated_at,
        },
        epoch,
      );
      found.set(key, message);
    }
    return found;
  }

  /**
   * Messages still streaming whose last event is older than `before`, in conversations persisted
   * under `epoch` (rows of an older log wait to be rebuilt from the new one, and no write to them
   * can succeed).
   */
  async streamingSilentSince(before: Date, limit: number, epoch: string): Promise<{ conversationId: string; id: string }[]> {
    // Raw, as it runs every few seconds on an idle service too: no query to compile each time,
    // and it reads the partial index of streaming rows (migration 20261205000000).
    return this.prisma.$queryRaw<{ conversationId: string; id: string }[]>`
      SELECT m.conversation_id AS "conversationId", m.id FROM messages m
      JOIN conversations c ON c.id = m.conversation_id AND c.log_epoch = ${epoch}
      WHERE m.status = 'streaming' AND m.updated_at < ${before.toISOString()}::timestamp
      ORDER BY m.updated_at LIMIT ${limit}`;
  }

  /**
   * One conversation's watermark (undefined when it does not exist), read with those asked for at
   * the same moment: devices of many conversations reconnecting at once cost a few statements.
   */
  watermarkOf(conversationId: string): Promise<Watermark | undefined> {
    return this.watermarkReads.load(conversationId);
  }

  /** Each existing conversation's watermark: every event of it up to this sequence is applied. Unknown ids are absent. */
  async watermarks(ids: string[]): Promise<Map<string, Watermark>> {
    const rows = await this.prisma.conversation.findMany({ where: { id: { in: ids } }, select: { id: true, appliedSeq: true, logEpoch: true } });
    return new Map(rows.map((row) => [row.id, { seq: Number(row.appliedSeq), epoch: row.logEpoch }]));
  }

  /**
   * Moves the rows of conversations persisted under an older log epoch to `archived_messages` and
   * starts them again at watermark 0 of `epoch`, so the new log rebuilds them. Nothing is deleted
   * for good. Returns the conversations it archived. A conversation that counts in a newer epoch is
   * left alone unless `newer` is set: whoever asks with an older one may not have seen the log
   * recreated yet, and would empty it. Set `newer` only once the log itself says `epoch` is its
   * own (a stream restored from a backup keeps its old creation time, so its epoch is older).
   */
  async archiveOtherEpochs(ids: string[], epoch: string, options: { newer?: boolean } = {}): Promise<string[]> {
    return this.prisma.$transaction(async (tx) => {
      await allowLongStatements(tx);
      const other = await tx.$queryRaw<{ id: string; log_epoch: string }[]>`
        SELECT id, log_epoch FROM conversations WHERE id = ANY(${ids}::text[]) AND log_epoch IS NOT NULL AND log_epoch <> ${epoch} FOR UPDATE`;
      const staleIds = other.filter((row) => options.newer || epochIsBefore(row.log_epoch, epoch)).map((row) => row.id);
      if (staleIds.length === 0) return [];
      await tx.$executeRaw`
        INSERT INTO archived_messages (conversation_id, log_epoch, id, author_role, author_id, status, text, blocks, error, created_seq, created_at, updated_at, archived_at)
        SELECT m.conversation_id, c.log_epoch, m.id, m.author_role, m.author_id, m.status, m.text, m.blocks, m.error, m.created_seq, m.created_at, m.updated_at, ${new Date().toISOString()}::timestamp(3)
        FROM messages m JOIN conversations c ON c.id = m.conversation_id
        WHERE m.conversation_id = ANY(${staleIds}::text[])
        ON CONFLICT DO NOTHING`;
      await tx.$executeRaw`DELETE FROM messages WHERE conversation_id = ANY(${staleIds}::text[])`;
      await tx.$executeRaw`UPDATE conversations SET applied_seq = 0, log_epoch = ${epoch} WHERE id = ANY(${staleIds}::text[])`;
      return staleIds;
    }, LONG_TRANSACTION);
  }

  /**
   * Replaces a conversation's rows and watermark with state rebuilt from the log (repair), creating
   * the conversation's row if the database lost it. `holes.clear`: the log held the whole
   * conversation, so the holes recorded before in this epoch give way to `holes.add`, the ones the rebuild
   * stepped over; otherwise those are added to them. Returns false, changing nothing, if the persister has
   * meanwhile applied events past `state.seq` in this epoch (rebuild from a fresher read), or counts
   * the conversation in another epoch now.
   */
  async replace(
    conversation: { id: string; title: string | null; createdAt: Date },
    state: { seq: number; messages: MessageState[] },
    epoch: string,
    holes: { clear: boolean; add: LogHole[] },
  ): Promise<boolean> {
    // In UTC, as every other write: `now()` would be the session's local time in these columns.
    const now = new Date().toISOString();
    return this.prisma.$transaction(async (tx) => {
      await allowLongStatements(tx);
      await tx.$executeRaw`
        INSERT INTO conversations (id, title, created_at, updated_at, applied_seq, log_epoch)
        VALUES (${conversation.id}, ${conversation.title}, ${conversation.createdAt}, ${now}::timestamp(3), 0, ${epoch})
        ON CONFLICT (id) DO NOTHING`;
      const [current] = await tx.$queryRaw<{ applied_seq: string; log_epoch: string | null }[]>`
        SELECT applied_seq::text, log_epoch FROM conversations WHERE id = ${conversation.id} FOR UPDATE`;
      if (current && current.log_epoch === epoch && Number(current.applied_seq) > state.seq) return false;
      // Counted in another epoch since the rebuild began (a persister archived it into a newer log):
      // rows rebuilt from that log stay, and a rebuild under this epoch's name is not written over them.
      if (current?.log_epoch != null && current.log_epoch !== epoch) return false;
      await tx.$executeRaw`DELETE FROM messages WHERE conversation_id = ${conversation.id}`;
      if (holes.clear) await tx.$executeRaw`DELETE FROM log_holes WHERE conversation_id = ${conversation.id} AND log_epoch = ${epoch}`;
      // A hole the persister recorded already is not recorded twice.
      for (const hole of holes.add) {
        await tx.$executeRaw`
          INSERT INTO log_holes (conversation_id, log_epoch, after_seq, until_seq, reason, detected_at)
          SELECT ${conversation.id}, ${hole.epoch}, ${hole.afterSeq}::bigint, ${hole.untilSeq}::bigint, ${hole.reason}, ${now}::timestamp(3)
          WHERE NOT EXISTS (SELECT 1 FROM log_holes WHERE conversation_id = ${conversation.id} AND log_epoch = ${hole.epoch} AND until_seq = ${hole.untilSeq}::bigint AND reason = ${hole.reason})`;
      }
      await tx.$executeRaw`UPDATE conversations SET applied_seq = ${state.seq}, log_epoch = ${epoch}, updated_at = ${now}::timestamp(3) WHERE id = ${conversation.id}`;
      await insertMessages(tx, state.messages.map((message) => ({ conversationId: conversation.id, state: message, fromSeq: null })));
      return true;
    }, LONG_TRANSACTION).catch((error: unknown) => {
      // The persister wrote the same rows meanwhile, taking its locks the other way round: the
      // rebuild is read again and tried again, as after any write of the persister's.
      if (isDeadlock(error)) return false;
      throw error;
    });
  }

  /** How many holes are recorded, in how many conversations. */
  async holeCount(): Promise<{ holes: number; conversations: number }> {
    const [row] = await this.prisma.$queryRaw<{ holes: number; conversations: number }[]>`
      SELECT count(*)::int AS holes, count(DISTINCT conversation_id)::int AS conversations FROM log_holes`;
    return row ?? { holes: 0, conversations: 0 };
  }

  /** Recorded holes, newest first. */
  async holes(limit: number): Promise<(LogHole & { detectedAt: string })[]> {
    const rows = await this.prisma.logHole.findMany({ orderBy: { id: 'desc' }, take: limit });
    return rows.map((row) => ({
      conversationId: row.conversationId,
      epoch: row.logEpoch,
      afterSeq: Number(row.afterSeq),
      untilSeq: Number(row.untilSeq),
      reason: row.reason as LogHole['reason'],
      detectedAt: row.detectedAt.toISOString(),
    }));
  }

  /** Gives watermarks written before they carried an epoch the current one; returns how many. */
  async bindEpoch(epoch: string): Promise<number> {
    return this.prisma.$executeRaw`UPDATE conversations SET log_epoch = ${epoch} WHERE log_epoch IS NULL AND applied_seq > 0`;
  }

  /**
   * Conversations of `epoch` persisted past `lastSeq`, the log's last event: the log lost events
   * it had acknowledged (an unreplicated node that crashed) after Postgres took them.
   */
  async aheadOfLog(epoch: string, lastSeq: number): Promise<{ conversations: number; sample: string[] }> {
    const rows = await this.prisma.conversation.findMany({ where: { logEpoch: epoch, appliedSeq: { gt: BigInt(lastSeq) } }, select: { id: true }, orderBy: { id: 'asc' }, take: 10 });
    const conversations = rows.length < 10 ? rows.length : await this.prisma.conversation.count({ where: { logEpoch: epoch, appliedSeq: { gt: BigInt(lastSeq) } } });
    return { conversations, sample: rows.map((row) => row.id) };
  }

  /** Conversations whose rows were last persisted under another log epoch than `epoch`. */
  async otherEpochCount(epoch: string): Promise<number> {
    return this.prisma.conversation.count({ where: { logEpoch: { not: null }, NOT: { logEpoch: epoch } } });
  }

  /**
   * Writes a batch atomically: inserts new messages, appends to existing ones, and moves each
   * conversation's watermark from `from` to `to`. One statement of each kind per batch, whatever
   * its size. An append only applies to a row still at `fromSeq` and a watermark only moves from
   * where the batch found it; anything else aborts the whole batch.
   */
  async write(changes: MessageWrite[], watermarks: Map<string, { from: number; to: number }>, epoch: string, holes: LogHole[] = []): Promise<void> {
    const updated = changes.filter((change) => change.fromSeq !== null);
    await this.prisma.$transaction(async (tx) => {
      await insertMessages(tx, changes.filter((change) => change.fromSeq === null));
      if (holes.length > 0) {
        await tx.logHole.createMany({
          data: holes.map((hole) => ({ conversationId: hole.conversationId, logEpoch: hole.epoch, afterSeq: BigInt(hole.afterSeq), untilSeq: BigInt(hole.untilSeq), reason: hole.reason })),
        });
      }
      if (updated.length > 0) {
        const count = await tx.$executeRaw`
          UPDATE messages AS m
          SET text = m.text || v.delta, blocks = CASE WHEN v.whole_blocks THEN v.blocks ELSE m.blocks || v.blocks END, status = v.status, parts = v.parts, error = v.error,
              applied_seq = v.applied_seq, updated_at = v.updated_at,
              part_lengths = m.part_lengths || string_to_array(v.part_lengths, ',')::int[],
              producer_id = v.producer_id, producer_epoch = v.producer_epoch,
              former_producers = (m.former_producers || string_to_array(v.former_producers, chr(31)))[greatest(1, cardinality(m.former_producers) + cardinality(string_to_array(v.former_producers, chr(31))) - ${MAX_FORMER_PRODUCERS - 1}::int):]
          FROM unnest(
            ${col(updated, (c) => c.conversationId)}::text[], ${col(updated, (c) => c.state.id)}::text[],
            ${col(updated, (c) => c.state.text)}::text[], ${col(updated, (c) => c.state.status)}::text[],
            ${col(updated, (c) => c.state.parts)}::int[], ${col(updated, (c) => c.state.error ?? null)}::text[],
            ${col(updated, (c) => String(c.state.appliedSeq))}::bigint[], ${col(updated, (c) => String(c.fromSeq))}::bigint[],
            ${col(updated, (c) => c.state.updatedAt)}::timestamp(3)[], ${col(updated, (c) => c.state.partLengths.join(','))}::text[],
            ${col(updated, (c) => c.state.producerId ?? null)}::text[], ${col(updated, (c) => c.state.producerEpoch)}::int[],
            ${col(updated, blocksJson)}::jsonb[], ${col(updated, formerProducersText)}::text[], ${col(updated, (c) => c.wholeBlocks === true)}::boolean[])
            AS v(conversation_id, id, delta, status, parts, error, applied_seq, from_seq, updated_at, part_lengths, producer_id, producer_epoch, blocks, former_producers, whole_blocks)
          WHERE m.conversation_id = v.conversation_id AND m.id = v.id AND m.applied_seq = v.from_seq`;
        if (count !== updated.length) throw new Error(`expected to update ${updated.length} messages, updated ${count}: rows changed underneath`);
      }
      if (watermarks.size > 0) {
        const moves = [...watermarks];
        const count = await tx.$executeRaw`
          UPDATE conversations AS c SET applied_seq = v.seq, log_epoch = ${epoch}, updated_at = ${new Date().toISOString()}::timestamp(3)
          FROM unnest(${moves.map(([id]) => id)}::text[], ${moves.map(([, m]) => String(m.from))}::bigint[], ${moves.map(([, m]) => String(m.to))}::bigint[]) AS v(id, from_seq, seq)
          WHERE c.id = v.id AND c.applied_seq = v.from_seq AND (c.log_epoch IS NULL OR c.log_epoch = ${epoch})`;
        if (count !== moves.length) throw new Error(`expected to move ${moves.length} watermarks, moved ${count}: another writer got there first`);
      }
    }, BATCH_TRANSACTION);
  }
}

type Tx = Parameters<Parameters<PrismaService['$transaction']>[0]>[0];

const col = <T>(list: MessageWrite[], pick: (change: MessageWrite) => T): T[] => list.map(pick);

/**
 * The blocks a write adds, as JSON: for an existing row, fragments of what this batch applied
 * (readers fold them), or all of them when the batch set a value whole (see `wholeBlocks`).
 */
const blocksJson = (change: MessageWrite): string => JSON.stringify(change.state.blocks ?? []);

/**
 * The producers a write adds, as one text: a producer id has no control characters, so the unit
 * separator (chr(31)) splits them again (an array of arrays would not survive `unnest`).
 */
const formerProducersText = (change: MessageWrite): string => (change.state.formerProducers ?? []).join('\x1f');

/** Inserts new messages, one statement whatever their number. */
async function insertMessages(tx: Tx, created: MessageWrite[]): Promise<void> {
  if (created.length === 0) return;
  await tx.$executeRaw`
          INSERT INTO messages (conversation_id, id, author_role, author_id, status, text, parts, error, created_seq, applied_seq, created_at, updated_at,
                                part_lengths, producer_id, producer_epoch, blocks, former_producers)
          SELECT v.conversation_id, v.id, v.author_role, v.author_id, v.status, v.text, v.parts, v.error, v.created_seq, v.applied_seq, v.created_at, v.updated_at,
                 string_to_array(v.part_lengths, ',')::int[], v.producer_id, v.producer_epoch, v.blocks, string_to_array(v.former_producers, chr(31))
          FROM unnest(
            ${col(created, (c) => c.conversationId)}::text[], ${col(created, (c) => c.state.id)}::text[],
            ${col(created, (c) => c.state.author.role)}::text[], ${col(created, (c) => c.state.author.id)}::text[],
            ${col(created, (c) => c.state.status)}::text[], ${col(created, (c) => c.state.text)}::text[],
            ${col(created, (c) => c.state.parts)}::int[], ${col(created, (c) => c.state.error ?? null)}::text[],
            ${col(created, (c) => String(c.state.createdSeq))}::bigint[], ${col(created, (c) => String(c.state.appliedSeq))}::bigint[],
            ${col(created, (c) => c.state.createdAt)}::timestamp(3)[], ${col(created, (c) => c.state.updatedAt)}::timestamp(3)[],
            ${col(created, (c) => c.state.partLengths.join(','))}::text[], ${col(created, (c) => c.state.producerId ?? null)}::text[],
            ${col(created, (c) => c.state.producerEpoch)}::int[], ${col(created, blocksJson)}::jsonb[], ${col(created, formerProducersText)}::text[])
            AS v(conversation_id, id, author_role, author_id, status, text, parts, error, created_seq, applied_seq, created_at, updated_at,
                 part_lengths, producer_id, producer_epoch, blocks, former_producers)
          ON CONFLICT DO NOTHING`;
}

interface MessageHeadRow {
  conversation_id: string;
  id: string;
  author_role: string;
  author_id: string;
  status: string;
  parts: number;
  error: string | null;
  producer_id: string | null;
  producer_epoch: number;
  created_seq: string;
  applied_seq: string;
  created_at: Date;
  updated_at: Date;
  /** Only when asked for (`withBlocks`); null otherwise. */
  blocks: unknown;
}

export function messageKey(conversationId: string, id: string): string {
  return `${conversationId}\u0000${id}`;
}

/** One row of the snapshot read: the conversation's watermark, and one message (all null when it has none). */
interface SnapshotRow {
  conversation_id: string;
  conversation_applied_seq: string;
  conversation_log_epoch: string | null;
  id: string | null;
  author_role: string | null;
  author_id: string | null;
  status: string | null;
  text: string | null;
  blocks: unknown;
  parts: number | null;
  error: string | null;
  part_lengths: number[] | null;
  producer_id: string | null;
  producer_epoch: number | null;
  former_producers: string[] | null;
  created_seq: string | null;
  applied_seq: string | null;
  created_at: Date | null;
  updated_at: Date | null;
}

/** Postgres broke a deadlock by failing this transaction (SQLSTATE 40P01), however the driver adapter reports it. */
function isDeadlock(error: unknown): boolean {
  const found = (value: unknown, depth = 0): boolean => {
    if (typeof value !== 'object' || value === null || depth > 4) return false;
    const e = value as Record<string, unknown>;
    if (e.code === '40P01' || e.originalCode === '40P01' || (typeof e.message === 'string' && e.message.includes('deadlock detected'))) return true;
    return found(e.cause, depth + 1) || found(e.meta, depth + 1) || found(e.driverAdapterError, depth + 1);
  };
  return found(error);
}
