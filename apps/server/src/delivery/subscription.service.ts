import { Injectable } from '@nestjs/common';
import { ConversationRepository, toPublicMessage } from '@seqline/persistence';
import { ErrorCode, formatCursor, parseCursor, SeqlineError, type ConversationEvent, type Message } from '@seqline/protocol';
import { ConversationLog, LogStream, toConversationEvent } from '@seqline/streams';
import { SnapshotService } from '../state/snapshot.service.js';

/** How a subscription starts: from the device's cursor, or from a snapshot when there is none or it is too old. */
export type SubscriptionStart =
  | { mode: 'resume'; cursor: string; head: string }
  | { mode: 'snapshot'; cursor: string; messages: Message[] };

export interface OpenSubscription {
  start: SubscriptionStart;
  /** Every event after `start.cursor`, then live ones, in order, until the signal aborts. */
  events: AsyncGenerator<ConversationEvent>;
}

/**
 * Shared by the WebSocket gateway and the SSE endpoint: both give the same replay-then-live
 * guarantee because catch-up and live events come from one JetStream consumer that starts
 * right after the cursor.
 */
@Injectable()
export class SubscriptionService {
  constructor(
    private readonly conversations: ConversationRepository,
    private readonly log: ConversationLog,
    private readonly stream: LogStream,
    private readonly snapshots: SnapshotService,
  ) {}

  async open(conversationId: string, after: string | undefined, signal: AbortSignal): Promise<OpenSubscription> {
    if (!(await this.conversations.exists(conversationId))) {
      throw new SeqlineError(ErrorCode.UnknownConversation, `conversation ${conversationId} does not exist`);
    }
    const start = await this.startFrom(conversationId, after);
    const seq = parseCursor(start.cursor)!.seq;
    return { start, events: this.events(conversationId, seq, signal) };
  }

  private async *events(conversationId: string, after: number, signal: AbortSignal): AsyncGenerator<ConversationEvent> {
    for await (const entry of this.log.tail(conversationId, after, signal)) yield toConversationEvent(entry, this.stream.epoch);
  }

  /** Resumes where the cursor is still backed by the log; falls back to a snapshot otherwise. */
  private async startFrom(conversationId: string, after: string | undefined): Promise<SubscriptionStart> {
    if (after === undefined || after === '') return this.snapshot(conversationId);
    const cursor = parseCursor(after);
    if (!cursor) throw new SeqlineError(ErrorCode.BadCursor, `"${after}" is not a cursor (expected <epoch>-<sequence>)`);
    if (cursor.epoch !== this.stream.epoch) return this.snapshot(conversationId);
    if (cursor.seq === 0) return this.resume(conversationId, after);
    const { first, last } = await this.stream.bounds();
    if (cursor.seq > last) throw new SeqlineError(ErrorCode.BadCursor, `cursor ${after} is ahead of the log`);
    if (cursor.seq < first) return this.snapshot(conversationId);
    const subject = await this.log.subjectAt(cursor.seq);
    if (subject === null) return this.snapshot(conversationId);
    if (subject !== this.stream.subjects.log(conversationId)) {
      throw new SeqlineError(ErrorCode.BadCursor, `cursor ${after} does not belong to conversation ${conversationId}`);
    }
    return this.resume(conversationId, after);
  }

  private async resume(conversationId: string, after: string): Promise<SubscriptionStart> {
    const last = await this.log.last(conversationId);
    return { mode: 'resume', cursor: after, head: formatCursor({ epoch: this.stream.epoch, seq: last?.seq ?? 0 }) };
  }

  private async snapshot(conversationId: string): Promise<SubscriptionStart> {
    const state = await this.snapshots.build(conversationId);
    return {
      mode: 'snapshot',
      cursor: formatCursor({ epoch: this.stream.epoch, seq: state.seq }),
      messages: [...state.messages.values()].sort((a, b) => a.createdSeq - b.createdSeq).map(toPublicMessage),
    };
  }
}
