import { ErrorCode, SeqlineError } from '@seqline/protocol';
import type { CommandSender } from './command-sender.js';

export interface AnswerStreamOptions {
  conversationId: string;
  messageId: string;
  coalesceMs: number;
  maxDeltaChars: number;
}

/**
 * One streamed answer. `append` never blocks: tokens that arrive while the previous append is
 * in flight, or within the coalescing window, go out together as the next part. Parts are sent
 * one at a time per answer, so they arrive in order; each is retried until acknowledged.
 */
export class AnswerStream {
  readonly conversationId: string;
  readonly messageId: string;
  private readonly controller = new AbortController();
  private pending = '';
  private part = 0;
  private timer?: ReturnType<typeof setTimeout>;
  private chain: Promise<void>;
  private failure?: Error;
  private ended = false;
  /** Resolves once the service has accepted the start of the answer; rejects if it refused it. */
  readonly ready: Promise<void>;

  constructor(
    private readonly sender: CommandSender,
    private readonly options: AnswerStreamOptions,
    started: Promise<void>,
  ) {
    this.conversationId = options.conversationId;
    this.messageId = options.messageId;
    this.ready = started;
    this.chain = started.catch((error: unknown) => this.recordFailure(error));
    // `ready` is optional to await; its rejection is reported through complete() and `signal`.
    started.catch(() => undefined);
  }

  /** Aborted when a device cancels the answer or the service refuses it; stop generating then. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  append(text: string): void {
    if (this.ended) throw new Error('append after complete() or fail()');
    if (text.length === 0 || this.controller.signal.aborted) return;
    this.pending += text;
    this.timer ??= setTimeout(() => this.flush(), this.options.coalesceMs);
  }

  /** Sends what is buffered and marks the answer complete. Rejects if the service refused any part. */
  async complete(): Promise<void> {
    await this.finish({ type: 'message.complete', messageId: this.messageId });
  }

  /** Ends the answer as failed for every device. */
  async fail(error: string): Promise<void> {
    await this.finish({ type: 'message.fail', messageId: this.messageId, error });
  }

  /** Called when the service reports the answer cancelled. */
  abort(reason: string): void {
    if (!this.controller.signal.aborted) this.controller.abort(new Error(reason));
  }

  private async finish(command: { type: 'message.complete'; messageId: string } | { type: 'message.fail'; messageId: string; error: string }): Promise<void> {
    if (this.ended) throw new Error('answer already ended');
    this.ended = true;
    this.flush();
    this.enqueue(async () => {
      await this.sender.send(this.conversationId, command);
    });
    await this.chain;
    if (this.failure) throw this.failure;
  }

  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    while (this.pending.length > 0) {
      const delta = this.pending.slice(0, this.options.maxDeltaChars);
      this.pending = this.pending.slice(delta.length);
      const part = ++this.part;
      this.enqueue(async () => {
        await this.sender.send(this.conversationId, { type: 'message.append', messageId: this.messageId, part, delta });
      });
    }
  }

  private enqueue(task: () => Promise<void>): void {
    this.chain = this.chain.then(async () => {
      if (this.failure) return;
      try {
        await task();
      } catch (error) {
        this.recordFailure(error);
      }
    });
  }

  private recordFailure(error: unknown): void {
    this.failure ??= error as Error;
    const code = error instanceof SeqlineError ? error.code : undefined;
    this.abort(code === ErrorCode.MessageFinished ? 'the answer was ended elsewhere (cancelled)' : String((error as Error).message));
  }
}
