import { randomUUID } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { ConversationRepository, MessageRepository, toPublicMessage, type ConversationRecord } from '@seqline/persistence';
import {
  ErrorCode,
  formatCursor,
  parseCursor,
  SeqlineError,
  type ConversationEvent,
  type CreateConversationBody,
  type Message,
  type Page,
  type PageQuery,
  type PostMessageBody,
} from '@seqline/protocol';
import { ConversationLog, LogStream, toConversationEvent } from '@seqline/streams';
import { ConversationCommands } from '../ingest/conversation-commands.service.js';
import { CursorResolver } from '../delivery/cursor-resolver.js';

@Injectable()
export class ConversationsService {
  constructor(
    private readonly conversations: ConversationRepository,
    private readonly messages: MessageRepository,
    private readonly log: ConversationLog,
    private readonly stream: LogStream,
    private readonly commands: ConversationCommands,
    private readonly cursors: CursorResolver,
  ) {}

  async create(body: CreateConversationBody): Promise<ConversationRecord> {
    const id = body.id ?? randomUUID();
    const created = await this.conversations.create(id, body.title ?? null);
    if (!created) throw new SeqlineError(ErrorCode.ConversationExists, `conversation ${id} already exists`);
    // The log keeps the conversation's own record too, so `seqline repair` can rebuild its row.
    try {
      await this.log.publishMeta({ id, title: created.title, createdAt: created.createdAt });
    } catch {
      await this.conversations.remove(id);
      throw new SeqlineError(ErrorCode.Unavailable, `the log did not take conversation ${id}; try again`);
    }
    return created;
  }

  async list(page: PageQuery): Promise<Page<ConversationRecord>> {
    const items = await this.conversations.list(page.after, page.limit);
    return { items, next: items.length === page.limit ? items.at(-1)!.id : null };
  }

  async get(id: string): Promise<ConversationRecord> {
    const conversation = await this.conversations.get(id);
    if (!conversation) throw unknown(id);
    return conversation;
  }

  /** History as persisted, one item per message in log order; `after` is the `cursor` of the last message seen. */
  async history(id: string, page: PageQuery): Promise<Page<Message>> {
    // The conversation first, as on `/events`: an unknown one is 404 whatever the cursor.
    await this.get(id);
    // A cursor of a log recreated since this instance last looked is judged on that log, as on every other route.
    await this.cursors.learnEpochOf(page.after);
    const epoch = this.stream.epoch;
    const after = this.afterSeq(page.after, epoch);
    const { messages, more } = await this.messages.page(id, after, page.limit, epoch);
    return { items: messages.map(toPublicMessage), next: more && messages.length > 0 ? messages.at(-1)!.cursor : null };
  }

  /**
   * Raw events after a cursor, straight from the log; without one, from the oldest event the log
   * still holds. A cursor is judged as on every transport (see CursorResolver); one the log can
   * no longer continue from answers `CURSOR_EXPIRED`, where a stream would send a snapshot.
   */
  async events(id: string, page: PageQuery): Promise<Page<ConversationEvent>> {
    await this.get(id);
    let after = 0;
    if (page.after !== undefined) {
      const start = await this.cursors.resolve(id, page.after);
      // An undecodable event next is left out below, as a page ending before it promised.
      if (start.kind === 'reload' && start.reason !== 'undecodable-next') {
        throw new SeqlineError(ErrorCode.CursorExpired, `the log no longer holds the events after ${page.after}; read the history from /v1/conversations/${id}/messages`);
      }
      after = start.seq;
    }
    // An undecodable event is left out, as live delivery leaves it out; the next event's `prev`
    // names it. It still counts in the page, so the page ends where the read did.
    let read = after;
    let skipped = 0;
    const epoch = this.stream.epoch;
    // The cursor was judged on the log as it was; one the instance found recreated meanwhile is of no use in the new one.
    if (page.after !== undefined && parseCursor(page.after)!.epoch !== epoch) {
      throw new SeqlineError(ErrorCode.CursorExpired, `the log was recreated; read the history from /v1/conversations/${id}/messages`);
    }
    const entries = await this.log.read(id, after, page.limit, (seq) => {
      skipped++;
      read = Math.max(read, seq);
    });
    // The log was recreated during the read: what was read may be either log's, and no cursor can say which.
    if (this.stream.epoch !== epoch) {
      throw new SeqlineError(ErrorCode.CursorExpired, `the log was recreated while it was read; read the history from /v1/conversations/${id}/messages`);
    }
    const items = entries.map((entry) => toConversationEvent(entry, epoch));
    read = Math.max(read, entries.at(-1)?.seq ?? 0);
    return { items, next: items.length + skipped === page.limit ? formatCursor({ epoch, seq: read }) : null };
  }

  async post(id: string, body: PostMessageBody): Promise<{ cursor: string; duplicate: boolean }> {
    const result = await this.commands.post(id, body.messageId, { role: 'user', id: body.authorId }, body.text);
    return { cursor: result.cursor, duplicate: result.duplicate };
  }

  private afterSeq(after: string | undefined, epoch: string): number {
    if (after === undefined) return 0;
    const cursor = parseCursor(after);
    if (!cursor) throw new SeqlineError(ErrorCode.BadCursor, `"${after}" is not a cursor (expected <epoch>-<sequence>)`);
    if (cursor.epoch !== epoch) {
      throw new SeqlineError(ErrorCode.BadCursor, `cursor ${after} is from another log epoch; the current one starts at ${formatCursor({ epoch, seq: 0 })}`);
    }
    return cursor.seq;
  }
}

function unknown(id: string): SeqlineError {
  return new SeqlineError(ErrorCode.UnknownConversation, `conversation ${id} does not exist`);
}
