import { MessageRepository } from '@seqline/persistence';
import { ConversationLog, decodeEntry, LogStream, UndecodableEventError, type LogEntry } from '@seqline/streams';
import { ErrorCode, SeqlineError } from '@seqline/protocol';
import { Injectable } from '@nestjs/common';
import { applyEntry, chainStep, type ConversationState } from '@seqline/persistence';

const CATCH_UP_LIMIT = 100_000;
/** A cache a few events behind (another instance wrote them) catches up by direct gets; a longer lag by a consumer. */
const DIRECT_GETS = 8;

/**
 * The log no longer holds events that come after a state and before the log's next event
 * (retention or the stream's size limit dropped them): the state cannot catch up by the log and
 * is built again (Postgres holds what the log dropped).
 */
export class LogGapError extends Error {}

/**
 * Builds a conversation's current state: the rows Postgres holds (consistent with its
 * watermark) plus the log events written since, so the result is exact up to `seq`.
 */
@Injectable()
export class SnapshotService {
  constructor(
    private readonly messages: MessageRepository,
    private readonly log: ConversationLog,
    private readonly stream: LogStream,
  ) {}

  /** The state as of the log's head when the last read ended (see `catchUp`). */
  async build(conversationId: string): Promise<ConversationState> {
    const rows = await this.messages.snapshot(conversationId, this.stream.epoch);
    if (!rows) throw new SeqlineError(ErrorCode.UnknownConversation, `conversation ${conversationId} does not exist`);
    // Rows of another log epoch count in sequences the current log does not have: the
    // conversation is rebuilt from the new log (and the persister archives those rows).
    const current = rows.logEpoch === null || rows.logEpoch === this.stream.epoch;
    const state: ConversationState = {
      conversationId,
      seq: current ? rows.appliedSeq : 0,
      messages: new Map(current ? rows.messages.map((message) => [message.id, message]) : []),
    };
    // Past Postgres, a gap is events no copy holds any more (a persister behind by more than the
    // retention): nothing would fill it, so the state goes on from what there is.
    await this.follow(state, false);
    return state;
  }

  /**
   * Applies the log events after `state.seq`, until a read finds nothing more: when it returns,
   * the log held nothing after `state.seq` at some moment during the call. Throws `LogGapError`
   * when the next event the log holds does not follow the state's last.
   */
  async catchUp(state: ConversationState): Promise<void> {
    await this.follow(state, true);
  }

  private async follow(state: ConversationState, refuseGaps: boolean): Promise<void> {
    /** Undecodable events stepped over: the chain goes on through them. */
    const skipped = new Set<number>();
    const apply = (entry: LogEntry): void => {
      // Undecodable events read before this one keep their place in the chain, as the persister
      // walks it: past them, an event naming one before them forks.
      for (const seq of skipped) if (seq > state.seq && seq < entry.seq) state.seq = seq;
      // A fork (a second event after the same one, which a replicated log on NATS before 2.9.21
      // can store): stepped over as the persister and `repair` step over it, so what devices and
      // writers are shown is what Postgres holds. Later events chain on from it.
      if (chainStep(state.seq, entry) === 'fork') {
        state.seq = entry.seq;
        return;
      }
      // Only `prev` ahead of the state's sequence is a gap.
      if (refuseGaps && entry.prev > state.seq && !skipped.has(entry.prev)) {
        throw new LogGapError(`the log no longer holds the events of ${state.conversationId} between ${state.seq} and ${entry.prev}`);
      }
      applyEntry(state, entry, this.stream.epoch);
    };
    // An undecodable event keeps its place in the chain and changes nothing (the persister records it as a hole).
    for (let i = 0; i < DIRECT_GETS; i++) {
      try {
        const entry = await this.log.next(state.conversationId, state.seq + 1);
        if (!entry) return;
        apply(entry);
      } catch (error) {
        if (!(error instanceof UndecodableEventError)) throw error;
        state.seq = error.seq;
      }
    }
    for (;;) {
      let last = 0;
      let undecodable = 0;
      // Decoded in full, as the direct gets above and the persister decode: a snapshot steps over
      // exactly the events Postgres never gets.
      const entries = await this.log.read(
        state.conversationId,
        state.seq,
        CATCH_UP_LIMIT,
        (seq) => {
          last = Math.max(last, seq);
          skipped.add(seq);
          undecodable++;
        },
        decodeEntry,
      );
      for (const entry of entries) apply(entry);
      state.seq = Math.max(state.seq, last);
      // The read's limit counts the events it stepped over too: only a read short of it reached the end.
      if (entries.length + undecodable < CATCH_UP_LIMIT) return;
    }
  }
}
