import { Inject, Injectable } from '@nestjs/common';
import type { Settings } from '@seqline/config';
import { ConversationLog } from '@seqline/streams';
import { parseCursor, type Author, type Prompt } from '@seqline/protocol';
import { SETTINGS } from '../core/tokens.js';
import type { WriteResult } from './conversation-writer.service.js';
import { WriteRouter } from './write-router.service.js';

/** A late retry looks for its prompt among at most this many of the conversation's later prompts. */
const MAX_PROMPTS_LOOKED_AT = 1_000;

/** What devices and admins may do to a conversation: post a prompt, cancel an answer. */
@Injectable()
export class ConversationCommands {

  constructor(
    private readonly writer: WriteRouter,
    private readonly log: ConversationLog,
    @Inject(SETTINGS) private readonly settings: Settings,
  ) {}

  /**
   * Writes a user message and hands it to agents. A retry re-sends the prompt, which JetStream
   * de-duplicates within its duplicate window. A retry from after that window (a phone that lost
   * the reply and came back minutes later) is not de-duplicated: a second prompt would be a second
   * answer, paid for twice. So a retry that late looks for the prompt in the log first, and hands
   * the message over only when the first request failed between writing it and handing it over
   * (NATS away for longer than its retries, or the instance died in between).
   */
  async post(conversationId: string, messageId: string, author: Author, text: string): Promise<WriteResult> {
    const result = await this.writer.write(conversationId, { type: 'message.post', messageId, author, text });
    if (result.duplicate && !(await this.promptMissing(conversationId, messageId, result.cursor))) return result;
    const prompt: Prompt = { conversationId, messageId, author, text, cursor: result.cursor };
    await this.log.publishPrompt(conversationId, prompt, `prompt.${conversationId}.${messageId}`);
    return result;
  }

  /**
   * Whether a repeated post must hand its prompt over. Within the duplicate window it is sent again
   * (JetStream drops it if it is there). After it, only when the log lacks it: a prompt is published
   * after its message, so it expires after it, and while the message is in the log, so is its
   * prompt. When the message has expired, or too many later prompts stand in the way, it is taken
   * as handed over: paying for an answer twice is the worse mistake.
   */
  private async promptMissing(conversationId: string, messageId: string, cursor: string): Promise<boolean> {
    const seq = parseCursor(cursor)?.seq;
    const stored = seq === undefined ? null : await this.log.timeAt(seq);
    if (seq === undefined || stored === null) return false;
    const windowMs = Math.min(this.settings.log.duplicateWindowMs, this.settings.log.retentionMs);
    if (Date.now() - stored.getTime() < windowMs) return true;
    return (await this.log.hasPrompt(conversationId, messageId, seq, MAX_PROMPTS_LOOKED_AT)) === false;
  }

  /** Ends a streaming answer as `aborted` for every device; the agent learns it from a notice and from its next append. */
  async cancel(conversationId: string, messageId: string, reason: string): Promise<WriteResult> {
    const result = await this.writer.write(conversationId, { type: 'message.cancel', messageId, reason });
    // Also for a repeated cancel: the first may have been written by a request that then timed out,
    // or by an instance that died before its notice went out. Agents stop once, however many come.
    this.log.publishCancelNotice({ conversationId, messageId, reason: 'cancelled by a device', status: 'aborted' });
    return result;
  }
}
