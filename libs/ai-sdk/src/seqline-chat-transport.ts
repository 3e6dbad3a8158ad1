import type { ChatTransport, UIMessage, UIMessageChunk } from 'ai';
import type { SeqlineClient, Subscription, SubscriptionChange } from '@seqline/client';
import { ErrorCode, ID_PATTERN, parseCursor, type Message } from '@seqline/protocol';
import { AnswerChunker } from './answer-chunks.js';
import { SeqlineTransportError } from './seqline-transport.error.js';
import { toUIMessages, type SeqlineMessageMetadata, type SeqlineUIMessage } from './ui-messages.js';

/** How long a stop() made before its answer started waits for that answer to cancel it. */
const PENDING_CANCEL_MS = 30_000;
/** After this chat's own streams end, how long until followers are told what changed meanwhile. */
const RETELL_AFTER_MS = 250;

export interface SeqlineChatTransportOptions {
  /** The device SDK client; give it a `KeyValueCursorStore(localStorage)` so a reload resumes from the stored cursor. */
  client: SeqlineClient;
  /** Posted as the author of the user's messages (with authentication on, the token's user is used). */
  authorId?: string;
  /** How long `reconnectToStream` and `history` wait for the conversation to be current. Default 10 s. */
  liveTimeoutMs?: number;
  /**
   * Called when the service refuses a `stop()`'s cancel (a token without the `cancel` right, a
   * rate limit): the answer goes on for everyone, and `follow()` listeners hear it is answering.
   */
  onCancelError?: (error: { conversationId: string; messageId: string; code: string; message: string }) => void;
}

/** Tells the app that the conversation changed outside this chat's own streams (another device, a cancel). */
export type FollowListener = (update: {
  messages: SeqlineUIMessage[];
  /** An answer is streaming (one this transport cancelled does not count). */
  answering: boolean;
  /** This transport is streaming into the chat itself: leave its messages to `useChat`. */
  ownStream: boolean;
}) => void;

type Chunk = UIMessageChunk<SeqlineMessageMetadata>;

/**
 * The AI SDK's `ChatTransport` over Seqline: `useChat`'s `chatId` is the conversation id. A
 * posted message is answered by whatever agent serves the conversation; every device on it sees
 * the same answer, a reload continues it from the stored cursor, and `stop()` cancels it for
 * everyone (the agent's abort signal fires). A tab closing or a lost network only disconnects.
 *
 * Reconnecting yields the whole answer so far, then the rest live (`resumeStreamIsReplay`):
 * `useChat` then rebuilds the message from the start instead of appending to what it showed.
 *
 * @example
 * const client = new SeqlineClient({ url: location.origin, store: new KeyValueCursorStore(localStorage) });
 * const transport = new SeqlineChatTransport({ client });
 * const chat = useChat({ id: conversationId, transport, messages: await transport.history(conversationId), resume: true });
 */
export class SeqlineChatTransport implements ChatTransport<UIMessage> {
  readonly resumeStreamIsReplay = true;
  /** Reconnects per conversation; a newer one supersedes an older one without cancelling the answer. */
  private readonly reconnects = new Map<string, number>();
  /** Streams this transport feeds into its chat, per conversation (a post in flight counts). */
  private readonly active = new Map<string, number>();
  /** Answers a stop() here cancelled: the cancel is on its way, so they are not followed again. */
  private readonly cancelled = new Set<string>();
  /** The `follow()` listeners' updates, per conversation: told again when this chat's own streams end or a cancel is refused. */
  private readonly followers = new Map<string, Set<() => void>>();
  private unloading = false;
  private closed = false;
  private readonly onPageHide = (): void => {
    this.unloading = true;
  };
  /** A page restored from the back/forward cache is a live page again. */
  private readonly onPageShow = (): void => {
    this.unloading = this.closed;
  };

  constructor(private readonly options: SeqlineChatTransportOptions) {
    // A tab closing aborts its streams too: that must not cancel the answer for everyone else.
    const page = globalThis as { addEventListener?: (type: string, listener: () => void) => void };
    page.addEventListener?.('pagehide', this.onPageHide);
    page.addEventListener?.('pageshow', this.onPageShow);
  }

  async sendMessages(options: Parameters<ChatTransport<UIMessage>['sendMessages']>[0]): Promise<ReadableStream<Chunk>> {
    if (options.trigger === 'regenerate-message') {
      throw new SeqlineTransportError('REGENERATE_UNSUPPORTED', 'a Seqline conversation keeps every answer: send the question again instead of regenerating');
    }
    const last = options.messages[options.messages.length - 1];
    if (!last || last.role !== 'user') throw new SeqlineTransportError('NO_USER_MESSAGE', 'the last message to send must be the user\'s');
    const text = last.parts.map((part) => (part.type === 'text' ? part.text : '')).join('');
    // Held from before the post, so no event of the answer is missed; the answer's stream lets it go.
    const subscription = this.options.client.subscribe(options.chatId);
    const messageId = ID_PATTERN.test(last.id) ? last.id : undefined;
    const release = this.hold(options.chatId);
    const posting = this.options.client.post(options.chatId, text, { ...(messageId ? { messageId } : {}), ...(this.options.authorId ? { authorId: this.options.authorId } : {}) });
    try {
      const posted = await untilAborted(posting, options.abortSignal);
      const after = parseCursor(posted.cursor)?.seq ?? 0;
      return this.answerStream(subscription, (messages) => answerTo(messages, posted.messageId, after), options.abortSignal, false);
    } catch (error) {
      if (options.abortSignal?.aborted && !this.unloading) {
        // Stopped while the post was on its way (offline, a slow service): the chat stops now. A
        // post already sent cannot be taken back; once it lands, its answer is cancelled.
        posting.then(
          (late) => this.cancelAnswer(options.chatId, (messages) => answerTo(messages, late.messageId, parseCursor(late.cursor)?.seq ?? 0)),
          () => undefined,
        );
      }
      subscription.close();
      // useChat sends an edited message under its old id; the service refuses other text under a
      // posted id (a retry, the same text, is taken as one).
      if ((error as { code?: unknown }).code === ErrorCode.MessageExists && options.messageId !== undefined) {
        throw new SeqlineTransportError('EDIT_UNSUPPORTED', 'a Seqline conversation keeps every message: send the edited question as a new message instead of editing one');
      }
      throw error;
    } finally {
      release();
    }
  }

  async reconnectToStream(options: Parameters<ChatTransport<UIMessage>['reconnectToStream']>[0]): Promise<ReadableStream<Chunk> | null> {
    const generation = (this.reconnects.get(options.chatId) ?? 0) + 1;
    this.reconnects.set(options.chatId, generation);
    const subscription = this.options.client.subscribe(options.chatId);
    const superseded = (): boolean => this.reconnects.get(options.chatId) !== generation;
    const release = this.hold(options.chatId);
    let streaming = false;
    try {
      await this.untilLive(subscription, options.abortSignal);
      const messages = subscription.messages;
      const last = messages[messages.length - 1];
      if (!last) return null;
      // The earliest answer still streaming, not only the last message: another device may have
      // posted since (a prompt after it), and that answer would be left frozen until it ended.
      const answering = messages.find((m) => this.streamsOn(options.chatId, m));
      if (answering) {
        streaming = true;
        return this.answerStream(subscription, () => answering.id, options.abortSignal, true, superseded);
      }
      if (last.author.role === 'user') {
        // Reloaded between posting and the answer's start: the answer is still to come.
        const after = parseCursor(last.cursor)?.seq ?? 0;
        streaming = true;
        return this.answerStream(subscription, (list) => answerTo(list, last.id, after), options.abortSignal, true, superseded);
      }
      return null;
    } finally {
      // Nothing to stream: let the conversation go (the answer's stream does otherwise).
      if (!streaming) subscription.close();
      release();
    }
  }

  /**
   * The conversation's messages as `UIMessage[]`, once the device is current: `useChat`'s
   * initial `messages`.
   */
  async history(conversationId: string): Promise<SeqlineUIMessage[]> {
    const subscription = this.options.client.subscribe(conversationId);
    try {
      await this.untilLive(subscription);
      return toUIMessages(subscription.messages);
    } finally {
      // The device keeps the conversation's state in its store; a chat that goes on subscribes again.
      subscription.close();
    }
  }

  /**
   * Calls `listener` once the device is current and whenever a message is added or ends, with
   * the messages and whether an answer is streaming: a chat that is idle shows them (`setMessages`) and, if `answering`, follows the
   * answer with `resumeStream()`. That is how a second device sees a prompt posted elsewhere.
   * Returns a function that stops listening.
   */
  follow(conversationId: string, listener: FollowListener): () => void {
    const subscription = this.options.client.subscribe(conversationId);
    let told = false;
    const notify = (change?: SubscriptionChange): void => {
      if (!subscription.live) return;
      // An append only grows a message a chat already knows of; one following the answer gets it through resumeStream().
      if (told && change?.type === 'event' && change.event.event.type === 'message.appended') return;
      told = true;
      const messages = subscription.messages;
      const answering = messages.some((m) => this.streamsOn(conversationId, m));
      listener({ messages: toUIMessages(messages), answering, ownStream: (this.active.get(conversationId) ?? 0) > 0 });
    };
    const off = subscription.on(notify);
    queueMicrotask(notify);
    const tell = (): void => notify();
    const followers = this.followers.get(conversationId) ?? new Set();
    followers.add(tell);
    this.followers.set(conversationId, followers);
    let following = true;
    return () => {
      if (!following) return;
      following = false;
      off();
      followers.delete(tell);
      if (followers.size === 0) this.followers.delete(conversationId);
      subscription.close();
    };
  }

  close(): void {
    this.closed = this.unloading = true;
    const page = globalThis as { removeEventListener?: (type: string, listener: () => void) => void };
    page.removeEventListener?.('pagehide', this.onPageHide);
    page.removeEventListener?.('pageshow', this.onPageShow);
  }

  private answerStream(
    subscription: Subscription,
    select: (messages: Message[]) => string | undefined,
    abortSignal: AbortSignal | undefined,
    resumed: boolean,
    superseded: () => boolean = () => false,
  ): ReadableStream<Chunk> {
    let answerId: string | undefined;
    let chunker: AnswerChunker | undefined;
    let stop = (): void => undefined;
    const cancel = (): void => {
      answerId ??= select(subscription.messages);
      if (answerId !== undefined) this.cancelNow(subscription.conversationId, answerId);
      else this.cancelAnswer(subscription.conversationId, select);
    };
    const release = this.hold(subscription.conversationId);
    return new ReadableStream<Chunk>({
      start: (controller) => {
        const update = (change?: SubscriptionChange): void => {
          // The client was closed under the chat: nothing more can arrive.
          if (change?.type === 'ended') {
            stop();
            controller.error(new SeqlineTransportError('CLIENT_CLOSED', `the Seqline client was closed while conversation ${subscription.conversationId} streamed`));
            return;
          }
          // Refused for good (an unknown conversation, one subscription too many): no answer can arrive.
          if (subscription.refusal) {
            stop();
            controller.error(refused(subscription));
            return;
          }
          answerId ??= select(subscription.messages);
          if (answerId === undefined) return;
          chunker ??= new AnswerChunker(answerId);
          for (const chunk of chunker.next(subscription.view.messages.get(answerId))) controller.enqueue(chunk);
          if (chunker.ended) {
            stop();
            controller.close();
          }
        };
        const onAbort = (): void => {
          stop();
          // A reconnect aborted because a newer one replaced it, or a page going away, only disconnects;
          // stop() in useChat cancels the answer. The newer reconnect is registered in the same task.
          setTimeout(() => {
            if (!this.unloading && !(resumed && superseded())) cancel();
          }, 0);
          try {
            controller.error(new DOMException('stopped', 'AbortError'));
          } catch {
            // already closed
          }
        };
        const off = subscription.on(update);
        abortSignal?.addEventListener('abort', onAbort, { once: true });
        let held = true;
        stop = () => {
          off();
          abortSignal?.removeEventListener('abort', onAbort);
          release();
          // The stream held the conversation; a chat that follows it holds it on its own.
          if (held) subscription.close();
          held = false;
        };
        if (abortSignal?.aborted) onAbort();
        else update();
      },
      // The reader lost interest (useChat replaced the stream): the answer goes on for everyone else.
      cancel: () => stop(),
    });
  }

  /**
   * Cancels the answer `select` finds, for everyone; one that has not started yet (stopped before
   * it did) as soon as it does, following the conversation meanwhile (the stream that was stopped
   * let it go), or not at all after `PENDING_CANCEL_MS`.
   */
  private cancelAnswer(conversationId: string, select: (messages: Message[]) => string | undefined): void {
    const pending = this.options.client.subscribe(conversationId);
    let done = false;
    const attempt = (): void => {
      const answerId = select(pending.messages);
      if (done || answerId === undefined) return;
      finish();
      this.cancelNow(conversationId, answerId);
    };
    const finish = (): void => {
      done = true;
      clearTimeout(giveUp);
      offPending();
      pending.close();
    };
    const offPending = pending.on(attempt);
    const giveUp = setTimeout(finish, PENDING_CANCEL_MS);
    attempt();
  }

  private cancelNow(conversationId: string, messageId: string): void {
    const key = answerKey(conversationId, messageId);
    this.cancelled.add(key);
    this.options.client.cancel(conversationId, messageId).catch((error: unknown) => {
      const { code, message } = error as { code?: unknown; message?: unknown };
      // Ended already (the stop raced its last event): nothing goes on.
      if (code === ErrorCode.MessageFinished) return;
      // Refused (no `cancel` right, a rate limit): the answer goes on for everyone, this chat too.
      this.cancelled.delete(key);
      this.options.onCancelError?.({ conversationId, messageId, code: typeof code === 'string' ? code : 'UNKNOWN', message: typeof message === 'string' ? message : String(error) });
      this.tellFollowers(conversationId);
    });
  }

  /** An answer streaming that no stop() here has cancelled. */
  private streamsOn(conversationId: string, message: Message): boolean {
    return message.author.role === 'agent' && message.status === 'streaming' && !this.cancelled.has(answerKey(conversationId, message.id));
  }

  /** Counts a stream of this transport into its chat until the returned function is called (once). */
  private hold(conversationId: string): () => void {
    this.active.set(conversationId, (this.active.get(conversationId) ?? 0) + 1);
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      const left = (this.active.get(conversationId) ?? 1) - 1;
      this.active.set(conversationId, left);
      // What followers were not told while this chat streamed (another device's prompt and answer):
      // told once the chat has read its own stream's end and rendered it (until then it ignores them).
      if (left === 0) setTimeout(() => this.tellFollowers(conversationId), RETELL_AFTER_MS);
    };
  }

  private tellFollowers(conversationId: string): void {
    for (const tell of this.followers.get(conversationId) ?? []) tell();
  }

  private async untilLive(subscription: Subscription, abortSignal?: AbortSignal): Promise<void> {
    const deadline = Date.now() + (this.options.liveTimeoutMs ?? 10_000);
    while (!subscription.live) {
      if (abortSignal?.aborted) throw new DOMException('aborted', 'AbortError');
      if (subscription.refusal) throw refused(subscription);
      if (Date.now() > deadline) throw new SeqlineTransportError('NOT_LIVE', `conversation ${subscription.conversationId} did not catch up within ${this.options.liveTimeoutMs ?? 10_000} ms`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

function answerKey(conversationId: string, messageId: string): string {
  return `${conversationId}\u0000${messageId}`;
}

/** `promise`, or an `AbortError` as soon as `signal` aborts. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(new DOMException('stopped', 'AbortError'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new DOMException('stopped', 'AbortError'));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

function refused(subscription: Subscription): SeqlineTransportError {
  const { code, message } = subscription.refusal!;
  return new SeqlineTransportError('SUBSCRIPTION_REFUSED', `conversation ${subscription.conversationId} cannot be followed: ${message}`, code);
}

/**
 * The answer to the prompt `promptId` (at sequence `after`): the agent message named after it
 * (`<promptId>-answer`, as the SDK's examples and the demo agents name answers), or else the first
 * agent message created after it that is not named after another prompt. With two devices posting
 * at once, the first answer after a prompt can be the other prompt's.
 */
export function answerTo(messages: Message[], promptId: string, after: number): string | undefined {
  const named = messages.find((message) => message.author.role === 'agent' && message.id === `${promptId}-answer`);
  if (named) return named.id;
  const othersAnswers = new Set(messages.filter((message) => message.author.role === 'user' && message.id !== promptId).map((message) => `${message.id}-answer`));
  return messages.find((message) => message.author.role === 'agent' && !othersAnswers.has(message.id) && (parseCursor(message.cursor)?.seq ?? 0) > after)?.id;
}
