import { Inject, Injectable } from '@nestjs/common';
import type { Settings } from '@seqline/config';
import { ConversationLog, LogStream } from '@seqline/streams';
import { parseCursor, type Author, type CancelNotice, type Prompt } from '@seqline/protocol';
import { SETTINGS } from '../core/tokens.js';
import type { WriteResult } from './conversation-writer.service.js';
import { WriteRouter } from './write-router.service.js';

/** What devices and admins may do to a conversation: post a prompt, cancel an answer. */
@Injectable()
export class ConversationCommands {
  private readonly encoder = new TextEncoder();

  constructor(
    private readonly writer: WriteRouter,
    private readonly log: ConversationLog,
    private readonly stream: LogStream,
    @Inject(SETTINGS) private readonly settings: Settings,
  ) {}

  /**
   * Writes a user message and hands it to agents. A retry re-sends the prompt, which JetStream
   * de-duplicates within its duplicate window. A retry from after that window (a phone that lost
   * the reply and came back minutes later) does not: a second prompt would be a second answer,
   * paid for twice. The first request answered only once its prompt was published, so a retry that
   * late follows a lost reply, and the prompt is taken as handed over.
   */
  async post(conversationId: string, messageId: string, author: Author, text: string): Promise<WriteResult> {
    const result = await this.writer.write(conversationId, { type: 'message.post', messageId, author, text });
    if (result.duplicate && !(await this.withinDuplicateWindow(result.cursor))) return result;
    const prompt: Prompt = { conversationId, messageId, author, text, cursor: result.cursor };
    await this.log.publishPrompt(conversationId, prompt, `prompt.${conversationId}.${messageId}`);
    return result;
  }

  private async withinDuplicateWindow(cursor: string): Promise<boolean> {
    const seq = parseCursor(cursor)?.seq;
    const stored = seq === undefined ? null : await this.log.timeAt(seq);
    const windowMs = Math.min(this.settings.log.duplicateWindowMs, this.settings.log.retentionMs);
    return stored !== null && Date.now() - stored.getTime() < windowMs;
  }

  /** Ends a streaming answer as `aborted` for every device; the agent learns it from a notice and from its next append. */
  async cancel(conversationId: string, messageId: string, reason: string): Promise<WriteResult> {
    const result = await this.writer.write(conversationId, { type: 'message.cancel', messageId, reason });
    // A repeated cancel tells agents nothing new (the first one's notice went out).
    if (result.duplicate) return result;
    const notice: CancelNotice = { conversationId, messageId };
    this.stream.nc.publish(this.stream.subjects.cancel(conversationId), this.encoder.encode(JSON.stringify(notice)));
    return result;
  }
}
