import { Injectable } from '@nestjs/common';
import { MessageRepository, type Watermark } from '@seqline/persistence';
import { epochIsBefore, ErrorCode, parseCursor, SeqlineError } from '@seqline/protocol';
import { ConversationLog, decodeDeliveredEntry, LogStream, UndecodableEventError } from '@seqline/streams';
import { within } from '../core/within.js';

/** Where a reader starts: right after a sequence of the log, or from a fresh copy of the state. */
export type StartPosition =
  /** `atHead`: the log held nothing after `seq` when it was checked; `next`: the event the log held right after it. */
  | { kind: 'resume'; seq: number; atHead?: boolean; next?: number }
  | { kind: 'reload'; reason: 'no-cursor' | 'other-epoch' | 'expired' }
  /**
   * The event after the cursor cannot be decoded, so no stream read gets past it (a snapshot skips
   * it). The cursor itself is an event of this conversation the log holds: a read that leaves
   * undecodable events out (REST `/events`) may go on from `seq`.
   */
  | { kind: 'reload'; reason: 'undecodable-next'; seq: number };

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
  private epochReadAt = -Infinity;
  /** The last read of the epoch, under way or done. */
  private epochRead: Promise<unknown> = Promise.resolve();

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
      await this.learnEpochOf(after);
      if (cursor.epoch !== this.stream.epoch) return { kind: 'reload', reason: 'other-epoch' };
    }
    if (window?.covers(cursor.seq)) return { kind: 'resume', seq: cursor.seq };
    let next;
    try {
      // Decoded as reads deliver it (its shape): one they pass on as written does not end a resume.
      next = await this.log.next(conversationId, cursor.seq + 1, decodeDeliveredEntry);
    } catch (error) {
      // An event that cannot be decoded follows the cursor: no read gets past it, a snapshot (which skips it) does.
      if (!(error instanceof UndecodableEventError)) throw error;
      // It has no `prev` to vouch for the cursor: the cursor's own event does, on this conversation's
      // subject (`<epoch>-0`, before any event, needs none: nothing precedes the undecodable one).
      const own = cursor.seq === 0 || (await this.log.subjectAt(cursor.seq)) === this.stream.subjects.log(conversationId);
      return own ? { kind: 'reload', reason: 'undecodable-next', seq: cursor.seq } : { kind: 'reload', reason: 'expired' };
    }
    // The event after the cursor names it as its predecessor: the cursor is this conversation's and nothing after it is lost.
    if (next) {
      if (next.prev === cursor.seq) return { kind: 'resume', seq: cursor.seq, next: next.seq };
      // The chain steps over the cursor: it was never an event of this conversation.
      if (next.prev < cursor.seq) return this.refuse(notThisConversation(after, conversationId), cursor.epoch);
      return this.judgeBroken(conversationId, after, cursor.seq, cursor.epoch);
    }
    if (cursor.seq === 0) return this.judgeEmptyLog(conversationId);
    const subject = await this.log.subjectAt(cursor.seq);
    if (subject === this.stream.subjects.log(conversationId)) return { kind: 'resume', seq: cursor.seq, atHead: true };
    if (subject !== null) return this.refuse(notThisConversation(after, conversationId), cursor.epoch);
    if (cursor.seq > (await this.stream.bounds()).last) return this.refuse(new SeqlineError(ErrorCode.BadCursor, `cursor ${after} is ahead of the log`), cursor.epoch);
    return this.judgeExpiredCursor(conversationId, cursor.seq);
  }

  /**
   * The cursor's event expired from the log and nothing follows it there. A conversation idle for
   * longer than the log keeps events ends that way, and its devices would get a whole snapshot on
   * every reconnect, though they missed nothing: when Postgres's watermark in this epoch is the
   * cursor itself, the cursor is the conversation's last event (a later one would be in the log,
   * or applied or recorded as a hole past it), and the device resumes at the head.
   */
  private async judgeExpiredCursor(conversationId: string, seq: number): Promise<StartPosition> {
    const watermark = await this.watermarkOf(conversationId);
    const current = watermark !== undefined && (watermark.epoch === null || watermark.epoch === this.stream.epoch);
    return current && watermark.seq === seq ? { kind: 'resume', seq, atHead: true } : { kind: 'reload', reason: 'expired' };
  }

  /**
   * Refuses a cursor the log does not fit, unless the log was recreated without this instance
   * knowing yet: an old log's cursor read against the new one fits nowhere, and deserves a
   * snapshot, not `BAD_CURSOR` (on which an `EventSource` gives up for good).
   */
  private async refuse(error: SeqlineError, epoch: string): Promise<StartPosition> {
    await this.refreshEpoch();
    if (this.stream.epoch === epoch) throw error;
    return { kind: 'reload', reason: 'other-epoch' };
  }

  /**
   * Reads the log's epoch again when `after` is a cursor of a newer log than this instance knows:
   * the log was recreated and the epoch watch has not seen it yet, and the cursor is to be judged
   * on the new log, not answered with the old one's state. Called before a subscription holds its
   * feed, so what it holds is the new log's. An epoch from the future (no log was created then) is
   * not worth a read.
   */
  async learnEpochOf(after: string | undefined): Promise<void> {
    const cursor = after ? parseCursor(after) : null;
    if (!cursor || !epochIsBefore(this.stream.epoch, cursor.epoch)) return;
    if (parseInt(cursor.epoch, 36) > Date.now() + EPOCH_CLOCK_SKEW_MS) return;
    await this.refreshEpoch();
  }

  /**
   * At most one read of the epoch every `EPOCH_READ_EVERY_MS` for cursors: made-up ones must not
   * turn each subscribe into a JetStream request. A cursor that comes while a read is under way
   * waits for it: right after the log was recreated, devices come back in a burst, and every one
   * after the first would otherwise be judged on the old epoch and refused `BAD_CURSOR`.
   */
  private async refreshEpoch(): Promise<void> {
    const now = performance.now();
    if (now - this.epochReadAt >= EPOCH_READ_EVERY_MS) {
      this.epochReadAt = now;
      this.epochRead = this.stream.refresh();
    }
    await this.epochRead;
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
    const watermark = await this.watermarkOf(conversationId);
    if (!watermark) throw new SeqlineError(ErrorCode.UnknownConversation, `conversation ${conversationId} does not exist`);
    // A watermark of an older epoch counts in the old log: the new one has nothing of it yet.
    const current = watermark.epoch === null || watermark.epoch === this.stream.epoch;
    if (current && watermark.seq > 0) return { kind: 'reload', reason: 'expired' };
    return { kind: 'resume', seq: 0, atHead: true };
  }

  /**
   * The conversation's watermark in Postgres. Postgres failing, or not answering (a network cut
   * leaves a query waiting for minutes), is `UNAVAILABLE`: the device retries, where a reload
   * would send it a snapshot that cannot be read either, and REST would say its cursor expired.
   */
  private async watermarkOf(conversationId: string): Promise<Watermark | undefined> {
    const unavailable = () => new SeqlineError(ErrorCode.Unavailable, 'the database cannot be reached to check this conversation; retry shortly');
    try {
      return await within(this.messages.watermarkOf(conversationId), WATERMARK_WAIT_MS, unavailable);
    } catch {
      throw unavailable();
    }
  }
}

/** As long as a snapshot may take to load: past it, a device is better told to retry. */
const WATERMARK_WAIT_MS = 10_000;

/** Short: a log recreated within it after a read that found no change still has its cursors refused `BAD_CURSOR`. */
const EPOCH_READ_EVERY_MS = 250;
/** How far ahead of this clock a log's creation time may be (another host's clock). */
const EPOCH_CLOCK_SKEW_MS = 60_000;

function notThisConversation(after: string, conversationId: string): SeqlineError {
  return new SeqlineError(ErrorCode.BadCursor, `cursor ${after} does not belong to conversation ${conversationId}`);
}
