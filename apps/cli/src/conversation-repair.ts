import { applyEntry, ConversationRepository, MessageRepository, walkChain, type ConversationState } from '@seqline/persistence';
import { epochIsBefore } from '@seqline/protocol';
import { decodeEntry, type ConversationLog, type LogStream } from '@seqline/streams';

export interface RepairResult {
  conversationId: string;
  /** `whole`: the log held the conversation from its first event; `partial`: its start had expired, older rows were kept; `none`: the log holds nothing of it. */
  log: 'whole' | 'partial' | 'none';
  messages: number;
  /** The watermark written: every event up to it is reflected in the rows. */
  seq: number;
  /** Rows of an older log epoch moved to archived_messages first. */
  archived: boolean;
  /** Log events that cannot be decoded and were skipped. */
  undecodable: number[];
  /** Log events that fork the conversation (a second event after the same one) and were skipped, as the persister skips them. */
  forks: number[];
}

/**
 * Why a conversation was not repaired, as `repair --all --json` reports it: `UNAVAILABLE` goes away
 * by running the repair again; `LOG_LOST_EVENTS` needs the log recreated first (no rebuild from a
 * log that ends before Postgres can reach Postgres's state).
 */
export class RepairError extends Error {
  constructor(
    readonly code: 'UNAVAILABLE' | 'LOG_LOST_EVENTS',
    message: string,
  ) {
    super(message);
    this.name = 'RepairError';
  }
}

const MAX_EVENTS = 10_000_000;
const ATTEMPTS = 5;

/**
 * Rebuilds a conversation's rows and watermark from the log, the source of truth. Rows of an older
 * log epoch are archived first. Messages created before the oldest event the log still holds are
 * kept as Postgres has them (the log cannot say more); everything the log holds is replayed with
 * the reducer and the `prev` chain rule the persister uses: an undecodable event or one that forks
 * the conversation is stepped over and recorded as a hole. Safe while the service runs: a
 * persister that moves past the rebuilt state meanwhile makes the repair read again.
 */
export class ConversationRepair {
  constructor(
    private readonly stream: LogStream,
    private readonly log: ConversationLog,
    private readonly conversations: ConversationRepository,
    private readonly messages: MessageRepository,
  ) {}

  /** The conversation rebuilt; null when neither Postgres nor the log holds anything of it (nothing is created then). */
  async repair(conversationId: string): Promise<RepairResult | null> {
    if (!(await this.conversations.get(conversationId)) && !(await this.log.meta(conversationId)) && (await this.log.lastSeq(conversationId)) === 0) return null;
    const epoch = this.stream.epoch;
    const counted = (await this.messages.watermarks([conversationId])).get(conversationId)?.epoch;
    // Rows of a newer epoch than the log's: the log was recreated while this ran, or it is older
    // than Postgres (restored from a backup). Only the stream can tell which.
    const newer = counted != null && epochIsBefore(epoch, counted);
    if (newer && !(await this.stream.confirms(epoch))) {
      throw new RepairError('UNAVAILABLE', `the log of ${conversationId} was recreated while repairing (epoch ${this.stream.epoch}); run the repair again`);
    }
    const archived = (await this.messages.archiveOtherEpochs([conversationId], epoch, { newer })).length > 0;
    for (let attempt = 1; ; attempt++) {
      const undecodable: number[] = [];
      // Decoded in full, as the persister decodes: the rebuild steps over what it steps over.
      const entries = await this.log.read(conversationId, 0, MAX_EVENTS, (seq) => undecodable.push(seq), decodeEntry);
      const firstSeq = Math.min(entries[0]?.seq ?? Infinity, undecodable[0] ?? Infinity);
      const whole = entries.length > 0 && entries[0]!.seq === firstSeq && entries[0]!.prev === 0;
      const rows = await this.messages.snapshot(conversationId, epoch);
      const kept = whole || !rows ? [] : rows.messages.filter((message) => message.createdSeq < firstSeq);
      const state: ConversationState = { conversationId, seq: 0, messages: new Map(kept.map((message) => [message.id, message])) };
      // Lenient: the log's start may have expired, so its first event may name any predecessor.
      const walk = walkChain(conversationId, epoch, 0, entries, undecodable, { strict: false });
      for (const entry of walk.apply) applyEntry(state, entry, epoch);
      state.seq = Math.max(state.seq, walk.position);
      const holes = walk.holes;
      const forks = holes.filter((hole) => hole.reason === 'fork').map((hole) => hole.untilSeq);
      // A log holding nothing of it leaves the watermark where it was.
      if (entries.length === 0 && undecodable.length === 0) state.seq = rows?.appliedSeq ?? 0;
      const existing = await this.conversations.get(conversationId);
      const meta = existing ? null : await this.log.meta(conversationId);
      const conversation = {
        id: conversationId,
        title: existing?.title ?? meta?.title ?? null,
        createdAt: new Date(existing?.createdAt ?? meta?.createdAt ?? entries[0]?.time ?? Date.now()),
      };
      const messages = [...state.messages.values()];
      // The log recreated while this read it: what was read may be the new log's, under the old
      // epoch's name, and would replace rows that were never archived.
      // Read only: an operator tool creates and changes no stream.
      const now = await this.stream.currentEpoch();
      if (now !== epoch) {
        throw new RepairError('UNAVAILABLE', `the log of ${conversationId} was recreated while repairing (epoch ${now ?? 'none: the stream is gone'}); run the repair again`);
      }
      // From the whole log the holes are known exactly; otherwise those recorded before stay.
      const replaced = await this.messages.replace(conversation, { seq: state.seq, messages }, epoch, { clear: whole, add: holes });
      // A conversation Postgres lacked: the persister acknowledged its events written after the
      // read above without applying them (no row to apply them to), and nothing delivers them again.
      if (replaced && !existing && (await this.log.lastSeq(conversationId)) > state.seq && attempt < ATTEMPTS) continue;
      if (replaced) {
        return { conversationId, log: whole ? 'whole' : entries.length + undecodable.length > 0 ? 'partial' : 'none', messages: messages.length, seq: state.seq, archived, undecodable, forks };
      }
      // Refused because Postgres holds it past the log's last event: no rebuild from the log can
      // get there, however often it is tried.
      const watermark = (await this.messages.watermarks([conversationId])).get(conversationId);
      const last = (await this.stream.bounds()).last;
      if (watermark && watermark.epoch === epoch && watermark.seq > last) {
        throw new RepairError(
          'LOG_LOST_EVENTS',
          `Postgres holds ${conversationId} up to event ${watermark.seq}, past the log's last event (${last}): the log lost events it had acknowledged; recreate the log, then run the repair (see Replicas in docs/production.md)`,
        );
      }
      if (attempt >= ATTEMPTS) throw new RepairError('UNAVAILABLE', `conversation ${conversationId} kept moving while it was repaired; try again`);
    }
  }
}
