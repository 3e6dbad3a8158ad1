import { MessageRepository } from '@seqline/persistence';
import { ConversationLog, LogStream, UndecodableEventError } from '@seqline/streams';
import { ErrorCode, SeqlineError } from '@seqline/protocol';
import { Injectable } from '@nestjs/common';
import { applyEntry, type ConversationState } from '@seqline/persistence';

const CATCH_UP_LIMIT = 100_000;
/** A cache a few events behind (another instance wrote them) catches up by direct gets; a longer lag by a consumer. */
const DIRECT_GETS = 8;

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
    await this.catchUp(state);
    return state;
  }

  /**
   * Applies the log events after `state.seq`, until a read finds nothing more: when it returns,
   * the log held nothing after `state.seq` at some moment during the call.
   */
  async catchUp(state: ConversationState): Promise<void> {
    // An undecodable event keeps its place in the chain and changes nothing (the persister records it as a hole).
    for (let i = 0; i < DIRECT_GETS; i++) {
      try {
        const entry = await this.log.next(state.conversationId, state.seq + 1);
        if (!entry) return;
        applyEntry(state, entry, this.stream.epoch);
      } catch (error) {
        if (!(error instanceof UndecodableEventError)) throw error;
        state.seq = error.seq;
      }
    }
    for (;;) {
      let skipped = 0;
      let undecodable = 0;
      const entries = await this.log.read(state.conversationId, state.seq, CATCH_UP_LIMIT, (seq) => {
        skipped = Math.max(skipped, seq);
        undecodable++;
      });
      for (const entry of entries) applyEntry(state, entry, this.stream.epoch);
      state.seq = Math.max(state.seq, skipped);
      // The read's limit counts the events it stepped over too: only a read short of it reached the end.
      if (entries.length + undecodable < CATCH_UP_LIMIT) return;
    }
  }
}
