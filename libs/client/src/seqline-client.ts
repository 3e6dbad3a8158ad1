import { CloseCode, ErrorCode, isRetryable, SeqlineError } from '../../protocol/src/errors.js';
import type { ServerFrame } from '../../protocol/src/ws-frames.js';
import { backoffDelay } from './backoff.js';
import { MemoryCursorStore, type CursorStore } from './cursor-store.js';
import { OPEN, socketUrl, type SocketFactory, type SocketLike } from './socket.js';
import { Subscription } from './subscription.js';

export type ConnectionState = 'connecting' | 'catching-up' | 'live' | 'offline';

export interface SeqlineClientOptions {
  /** The service's base URL, e.g. `https://chat.example.com`. */
  url: string;
  /** Returns the device's token; called before every (re)connect. */
  token?: () => string | undefined | Promise<string | undefined>;
  /** Where cursors and messages survive restarts. Default: memory only. */
  store?: CursorStore;
  /** A WebSocket implementation; defaults to the global one (browsers, React Native). In Node pass `ws`. */
  WebSocket?: new (url: string) => unknown;
  /** Reconnect back-off bounds. Default 250 ms to 15 s. */
  reconnect?: { minDelayMs?: number; maxDelayMs?: number };
  /** How often a conversation's state is written to the store while events arrive. Default 250 ms. */
  saveIntervalMs?: number;
}

interface PendingRequest {
  frame: Record<string, unknown>;
  resolve: (frame: ServerFrame) => void;
  reject: (error: SeqlineError) => void;
}

/** Close codes after which reconnecting cannot help. */
const FINAL_CLOSE_CODES = new Set<number>([CloseCode.FrameTooLarge]);

/**
 * The device SDK: one WebSocket, any number of conversations, each resumed from its stored cursor.
 *
 * @example
 * const client = new SeqlineClient({ url: 'https://chat.example.com', store: new KeyValueCursorStore(localStorage) });
 * const conversation = client.subscribe('c1');
 * conversation.on(() => render(conversation.messages));
 * await client.post('c1', 'Tell me a story');
 */
export class SeqlineClient {
  private socket?: SocketLike;
  private stateValue: ConnectionState = 'offline';
  private readonly subscriptions = new Map<string, Subscription>();
  private readonly pending = new Map<string, PendingRequest>();
  private readonly stateListeners = new Set<(state: ConnectionState) => void>();
  private readonly saveTimers = new Map<string, ReturnType<typeof setTimeout>>();
  private readonly store: CursorStore;
  private readonly Socket: SocketFactory;
  private attempt = 0;
  private reconnectTimer?: ReturnType<typeof setTimeout>;
  private wanted = true;
  private nextRef = 0;

  constructor(private readonly options: SeqlineClientOptions) {
    this.store = options.store ?? new MemoryCursorStore();
    const Socket = (options.WebSocket ?? (globalThis as { WebSocket?: unknown }).WebSocket) as SocketFactory | undefined;
    if (!Socket) throw new Error('no WebSocket implementation: pass one as options.WebSocket (in Node: import WebSocket from "ws")');
    this.Socket = Socket;
    void this.open();
  }

  get state(): ConnectionState {
    return this.stateValue;
  }

  /** Calls `listener` whenever the connection state changes; returns a function that stops it. */
  onStateChange(listener: (state: ConnectionState) => void): () => void {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }

  /** Follows a conversation, resuming from the stored cursor if there is one. */
  subscribe(conversationId: string): Subscription {
    const existing = this.subscriptions.get(conversationId);
    if (existing) return existing;
    const subscription = new Subscription(conversationId, (s) => this.detach(s));
    this.subscriptions.set(conversationId, subscription);
    void (async () => {
      const stored = await this.store.load(conversationId);
      if (stored && subscription.view.cursor === undefined) {
        subscription.view.reset(stored);
        subscription.emit({ type: 'reset' });
      }
      subscription.loaded = true;
      this.sendSubscribe(subscription);
    })();
    return subscription;
  }

  /** Posts a user message; `messageId` makes a retry (also after a reconnect) apply once. Resolves with its cursor. */
  async post(conversationId: string, text: string, options: { messageId?: string; authorId?: string } = {}): Promise<{ messageId: string; cursor: string }> {
    const messageId = options.messageId ?? randomId();
    const ack = await this.request({ type: 'post', conversationId, messageId, text, ...(options.authorId ? { authorId: options.authorId } : {}) });
    return { messageId, cursor: (ack as { cursor: string }).cursor };
  }

  /** Cancels a streaming answer; it ends `aborted` for every device and the agent is told to stop. */
  async cancel(conversationId: string, messageId: string): Promise<void> {
    await this.request({ type: 'cancel', conversationId, messageId });
  }

  /** Hands the socket a fresh token from the token provider, before the current one expires, without dropping the stream. */
  async refreshToken(): Promise<void> {
    const token = await this.options.token?.();
    if (token) await this.request({ type: 'auth', token });
  }

  /** Goes offline (keeps state); `connect()` resumes every conversation from its cursor. */
  disconnect(): void {
    this.wanted = false;
    clearTimeout(this.reconnectTimer);
    this.socket?.close(1000, 'client disconnect');
    this.socket = undefined;
    this.setState('offline');
  }

  connect(): void {
    if (this.wanted && this.socket) return;
    this.wanted = true;
    this.attempt = 0;
    void this.open();
  }

  /** Disconnects for good, writing every conversation's state to the store first. */
  async close(): Promise<void> {
    this.disconnect();
    await Promise.all([...this.subscriptions.values()].map((subscription) => this.save(subscription)));
  }

  private async open(): Promise<void> {
    if (!this.wanted) return;
    this.setState('connecting');
    const token = await this.options.token?.();
    if (!this.wanted) return;
    const socket = new this.Socket(socketUrl(this.options.url, token));
    this.socket = socket;
    socket.onopen = () => {
      this.attempt = 0;
      this.setState(this.subscriptions.size > 0 ? 'catching-up' : 'live');
      for (const subscription of this.subscriptions.values()) this.sendSubscribe(subscription);
      for (const [ref, request] of this.pending) this.sendFrame({ ...request.frame, ref });
    };
    socket.onmessage = (event) => this.receive(JSON.parse(String(event.data)) as ServerFrame);
    socket.onerror = () => undefined;
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = undefined;
      this.setState('offline');
      for (const subscription of this.subscriptions.values()) subscription.live = false;
      if (!this.wanted || FINAL_CLOSE_CODES.has(event.code)) return;
      // Without a token provider, a refused token will not get better by itself.
      if (event.code === CloseCode.Unauthorized && !this.options.token) return;
      // Going away asks for an immediate move to another instance; an expired token for a fresh one at once.
      const immediate = event.code === CloseCode.GoingAway || event.code === CloseCode.TokenExpired;
      const delay = immediate ? backoffDelay(0, 100, 100) : backoffDelay(this.attempt++, this.options.reconnect?.minDelayMs ?? 250, this.options.reconnect?.maxDelayMs ?? 15_000);
      this.reconnectTimer = setTimeout(() => void this.open(), delay);
    };
  }

  private receive(frame: ServerFrame): void {
    switch (frame.type) {
      case 'snapshot': {
        const subscription = this.subscriptions.get(frame.conversationId);
        if (!subscription) return;
        subscription.view.reset({ cursor: frame.cursor, messages: frame.messages });
        subscription.repairing = false;
        subscription.retries = 0;
        subscription.head = frame.cursor;
        subscription.emit({ type: 'reset' });
        void this.save(subscription);
        this.refreshLive(subscription);
        return;
      }
      case 'subscribed': {
        const subscription = this.subscriptions.get(frame.conversationId);
        if (!subscription) return;
        subscription.repairing = false;
        subscription.retries = 0;
        subscription.head = frame.head;
        this.refreshLive(subscription);
        return;
      }
      case 'event': {
        const subscription = this.subscriptions.get(frame.conversationId);
        if (!subscription || subscription.repairing) return;
        const { type: _type, ...event } = frame;
        switch (subscription.view.apply(event)) {
          case 'applied':
            subscription.emit({ type: 'event', event });
            this.scheduleSave(subscription);
            this.refreshLive(subscription);
            return;
          case 'duplicate':
            return;
          case 'gap':
            // Ask the server for everything after our cursor again; it replays, or sends a snapshot if it no longer can.
            subscription.repairing = true;
            this.sendSubscribe(subscription);
            return;
        }
        return;
      }
      case 'ack':
      case 'pong':
      case 'authenticated':
      case 'unsubscribed':
        if (frame.ref) this.settle(frame.ref, frame);
        return;
      case 'error': {
        if (frame.ref && this.pending.has(frame.ref)) {
          this.settle(frame.ref, frame);
          return;
        }
        const subscription = frame.conversationId ? this.subscriptions.get(frame.conversationId) : undefined;
        if (!subscription) return;
        if (frame.code === ErrorCode.BadCursor || frame.code === ErrorCode.CursorExpired) {
          // Our stored state does not fit this log: start over from a snapshot.
          subscription.view.cursor = undefined;
          void this.store.remove(subscription.conversationId);
          this.sendSubscribe(subscription);
          return;
        }
        subscription.emit({ type: 'error', code: frame.code, message: frame.message });
        // A passing failure (the database down for a snapshot, a limit hit): subscribe again, backing off.
        if (isRetryable(frame.code)) {
          clearTimeout(subscription.retryTimer);
          const delay = backoffDelay(subscription.retries++, this.options.reconnect?.minDelayMs ?? 250, this.options.reconnect?.maxDelayMs ?? 15_000);
          subscription.retryTimer = setTimeout(() => {
            if (this.subscriptions.get(subscription.conversationId) === subscription) this.sendSubscribe(subscription);
          }, delay);
        }
        return;
      }
      default: {
        const unreachable: never = frame;
        return unreachable;
      }
    }
  }

  private request(frame: Record<string, unknown>): Promise<ServerFrame> {
    const ref = `r${++this.nextRef}`;
    return new Promise((resolve, reject) => {
      this.pending.set(ref, { frame, resolve, reject });
      this.sendFrame({ ...frame, ref });
    });
  }

  private settle(ref: string, frame: ServerFrame): void {
    const request = this.pending.get(ref);
    if (!request) return;
    this.pending.delete(ref);
    if (frame.type === 'error') request.reject(new SeqlineError(frame.code as ErrorCode, frame.message));
    else request.resolve(frame);
  }

  private sendSubscribe(subscription: Subscription): void {
    if (!subscription.loaded) return;
    const after = subscription.view.cursor;
    this.sendFrame({ type: 'subscribe', conversationId: subscription.conversationId, ...(after ? { after } : {}) });
  }

  private sendFrame(frame: Record<string, unknown>): void {
    if (this.socket?.readyState === OPEN) this.socket.send(JSON.stringify(frame));
  }

  private detach(subscription: Subscription): void {
    if (this.subscriptions.get(subscription.conversationId) !== subscription) return;
    this.subscriptions.delete(subscription.conversationId);
    void this.save(subscription);
    this.sendFrame({ type: 'unsubscribe', conversationId: subscription.conversationId });
  }

  private refreshLive(subscription: Subscription): void {
    subscription.updateLive();
    if (this.socket?.readyState !== OPEN) return;
    const all = [...this.subscriptions.values()].every((s) => s.live);
    this.setState(all ? 'live' : 'catching-up');
  }

  private scheduleSave(subscription: Subscription): void {
    if (this.saveTimers.has(subscription.conversationId)) return;
    this.saveTimers.set(
      subscription.conversationId,
      setTimeout(() => void this.save(subscription), this.options.saveIntervalMs ?? 250),
    );
  }

  private async save(subscription: Subscription): Promise<void> {
    clearTimeout(this.saveTimers.get(subscription.conversationId));
    this.saveTimers.delete(subscription.conversationId);
    const stored = subscription.view.toStored();
    if (stored) await this.store.save(subscription.conversationId, stored);
  }

  private setState(state: ConnectionState): void {
    if (state === this.stateValue) return;
    this.stateValue = state;
    for (const listener of this.stateListeners) listener(state);
  }
}

function randomId(): string {
  const random = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto?.randomUUID;
  return random ? random.call((globalThis as { crypto: object }).crypto) : `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 10)}`;
}
