import { Injectable } from '@nestjs/common';
import { MessageRepository, type Watermark } from '@seqline/persistence';
import { epochIsBefore, ErrorCode, parseCursor, SeqlineError } from '@seqline/protocol';
import { ConversationLog, decodeDeliveredEntry, LogStream, UndecodableEventError } from '@seqline/streams';

/** Where a reader starts: right after a sequence of the log, or from a fresh copy of the state. */
export type StartPosition =
  /** `atHead`: the log held nothing after `seq` when it was checked. */
  | { kind: 'resume'; seq: number; atHead?: boolean }
  | { kind: 'reload'; reason: 'no-cursor' | 'other-epoch' | 'expired' };

/**
 * Turns a cursor into a start position, the same way for WebSocket, SSE and REST
 * (docs/protocol.md#cursors-one-rule-for-every-transport):
 * - no cursor: reload (a snapshot);
 * - not a cursor, ahead of the log, or an event of another conversation: `BAD_CURSOR`;
 * - another epoch, or events after it gone from the log: reload (REST answers `CURSOR_EXPIRED`);
 * - otherwise: resume right after it.
 * It needs only the log (and often not even that, when the live feed's window covers the
 * cursor), so devices resume while Postgres is down. The one exception is `<epoch>-0` on a
 * conversation whose log is empty, which asks Postgres whether the conversation exists, and
 * whether it had events the log no longer holds.
 */
@Injectable()
export class CursorResolver {
  constructor(
    private readonly log: ConversationLog,
    private readonly stream: LogStream,
    private readonly messages: MessageRepository,
  ) {}

  async resolve(conversationId: string, after: string | undefined, window?: { covers(seq: number): boolean }): Promise<StartPosition> {
    if (after === undefined || after === '') return { kind: 'reload', reason: 'no-cursor' };
    const cursor = parseCursor(after);
    if (!cursor) throw new SeqlineError(ErrorCode.BadCursor, `"${after}" is not a cursor (expected <epoch>-<sequence>)`);
    if (cursor.epoch !== this.stream.epoch) {
      // A cursor of a newer log than this instance knows: the log was recreated and the epoch
      // watch has not seen it yet. Judged on the new log, not answered with the old one's state.
      if (epochIsBefore(this.stream.epoch, cursor.epoch)) await this.stream.refresh();
      if (cursor.epoch !== this.stream.epoch) return { kind: 'reload', reason: 'other-epoch' };
    }
    if (window?.covers(cursor.seq)) return { kind: 'resume', seq: cursor.seq };
    let next;
    try {
      // Decoded as reads deliver it (its shape): one they pass on as written does not end a resume.
      next = await this.log.next(conversationId, cursor.seq + 1, decodeDeliveredEntry);
    } catch (error) {
      // An event that cannot be decoded follows the cursor: no read gets past it, a snapshot (which skips it) does.
      if (error instanceof UndecodableEventError) return { kind: 'reload', reason: 'expired' };
      throw error;
    }
    // The event after the cursor names it as its predecessor: the cursor is this conversation's and nothing after it is lost.
    if (next) {
      if (next.prev === cursor.seq) return { kind: 'resume', seq: cursor.seq };
      // The chain steps over the cursor: it was never an event of this conversation.
      if (next.prev < cursor.seq) return this.refuse(notThisConversation(after, conversationId), cursor.epoch);
      return this.judgeBroken(conversationId, after, cursor.seq, cursor.epoch);
    }
    if (cursor.seq === 0) return this.judgeEmptyLog(conversationId);
    const subject = await this.log.subjectAt(cursor.seq);
    if (subject === this.stream.subjects.log(conversationId)) return { kind: 'resume', seq: cursor.seq, atHead: true };
    if (subject !== null) return this.refuse(notThisConversation(after, conversationId), cursor.epoch);
    if (cursor.seq > (await this.stream.bounds()).last) return this.refuse(new SeqlineError(ErrorCode.BadCursor, `cursor ${after} is ahead of the log`), cursor.epoch);
    return { kind: 'reload', reason: 'expired' };
  }

  /**
   * Refuses a cursor the log does not fit, unless the log was recreated without this instance
   * knowing yet: an old log's cursor read against the new one fits nowhere, and deserves a
   * snapshot, not `BAD_CURSOR` (on which an `EventSource` gives up for good).
   */
  private async refuse(error: SeqlineError, epoch: string): Promise<StartPosition> {
    if (await this.stream.confirms(epoch)) throw error;
    return { kind: 'reload', reason: 'other-epoch' };
  }

  /** The next event does not follow the cursor: either the cursor is another conversation's, or events after it are gone. */
  private async judgeBroken(conversationId: string, after: string, seq: number, epoch: string): Promise<StartPosition> {
    if (seq === 0) return { kind: 'reload', reason: 'expired' };
    const subject = await this.log.subjectAt(seq);
    if (subject !== null && subject !== this.stream.subjects.log(conversationId)) return this.refuse(notThisConversation(after, conversationId), epoch);
    return { kind: 'reload', reason: 'expired' };
  }

  /**
   * `<epoch>-0` on a conversation the log holds no event of: either it has none yet (resume at
   * its head), or all of them have expired, which only Postgres can tell: its watermark in this
   * epoch is past 0. (An event written and persisted since the log was read counts as expired
   * too: the snapshot then holds it, which is as exact.)
   */
  private async judgeEmptyLog(conversationId: string): Promise<StartPosition> {
    let watermark: Watermark | undefined;
    try {
      watermark = (await this.messages.watermarks([conversationId])).get(conversationId);
    } catch {
      throw new SeqlineError(ErrorCode.Unavailable, 'the database cannot be reached to check this conversation; retry shortly');
    }
    if (!watermark) throw new SeqlineError(ErrorCode.UnknownConversation, `conversation ${conversationId} does not exist`);
    // A watermark of an older epoch counts in the old log: the new one has nothing of it yet.
    const current = watermark.epoch === null || watermark.epoch === this.stream.epoch;
    if (current && watermark.seq > 0) return { kind: 'reload', reason: 'expired' };
    return { kind: 'resume', seq: 0, atHead: true };
  }
}

function notThisConversation(after: string, conversationId: string): SeqlineError {
  return new SeqlineError(ErrorCode.BadCursor, `cursor ${after} does not belong to conversation ${conversationId}`);
}
