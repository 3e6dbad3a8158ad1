import { Injectable } from '@nestjs/common';
import { ConversationLog, LogStream } from '@seqline/streams';
import type { Author, CancelNotice, Prompt } from '@seqline/protocol';
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
  ) {}

  /** Writes a user message and hands it to agents. A retry re-sends the prompt, which JetStream de-duplicates. */
  async post(conversationId: string, messageId: string, author: Author, text: string): Promise<WriteResult> {
    const result = await this.writer.write(conversationId, { type: 'message.post', messageId, author, text });
    const prompt: Prompt = { conversationId, messageId, author, text, cursor: result.cursor };
    await this.log.publishPrompt(conversationId, prompt, `prompt.${conversationId}.${messageId}`);
    return result;
  }

  /** Ends a streaming answer as `aborted` for every device; the agent learns it from a notice and from its next append. */
  async cancel(conversationId: string, messageId: string, reason: string): Promise<WriteResult> {
    const result = await this.writer.write(conversationId, { type: 'message.cancel', messageId, reason });
    const notice: CancelNotice = { conversationId, messageId };
    this.stream.nc.publish(this.stream.subjects.cancel(conversationId), this.encoder.encode(JSON.stringify(notice)));
    return result;
  }
}
