import { parseCursor } from '../../protocol/src/cursor.js';
import { CloseCode, ErrorCode, isRetryable, SeqlineError } from '../../protocol/src/errors.js';
import { DEFAULT_LIMITS, ID_PATTERN } from '../../protocol/src/limits.js';
import { utf8Length } from '../../protocol/src/utf8.js';
import type { ServerFrame } from '../../protocol/src/ws-frames.js';
import { backoffDelay } from './backoff.js';
import { MemoryCursorStore, type CursorStore } from './cursor-store.js';
import { tolerantStore } from './tolerant-store.js';
import { SilenceWatchdog, type SilenceWatchdogOptions } from './silence-watchdog.js';
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
  /**
   * The largest frame the server takes, in bytes: its `LIMIT_FRAME_BYTES`. Default 65,536, the
   * server's default; at most 4 MiB, the WebSocket's own fixed cap. A request (post, cancel,
   * auth) whose frame is larger is refused here (`FRAME_TOO_LARGE`) without being sent.
   */
  maxFrameBytes?: number;
  /**
   * After `intervalMs` (25 s) without a frame from the server the client sends a `ping`; if nothing
   * arrives within `timeoutMs` (10 s) after it, it drops the connection and reconnects, resuming
   * every conversation from its cursor. This is how a socket that died without a close (a network
   * change, a sleep) is noticed. `false` turns it off.
   */
  heartbeat?: SilenceWatchdogOptions | false;
  /**
   * How long an upgrade may take before the attempt is dropped and retried (a phone that changed
   * networks mid-connect would otherwise wait out the system's TCP timeout), and how long an
   * attempt waits for the `token` provider (a call not answered in four times this is made
   * anew). Default 15 s.
   */
  connectTimeoutMs?: number;
}

interface PendingRequest {
  frame: Record<string, unknown>;
  resolve: (frame: ServerFrame) => void;
  reject: (error: SeqlineError) => void;
  /** For a token refresh: which ask of the token provider gave its token. */
  tokenAsk?: number;
}

/** The server's WebSocket takes no frame over this, whatever its `LIMIT_FRAME_BYTES` (docs/protocol.md). */
const WEBSOCKET_MAX_FRAME_BYTES = 4 * 1024 * 1024;

/** Close codes after which reconnecting cannot help. */
const FINAL_CLOSE_CODES = new Set<number>([CloseCode.FrameTooLarge]);

/**
 * How long a socket must stay open to count as a working session when the server sent nothing
 * (no subscriptions, no requests). A refusal (4401, 4402, 4429) closes it within milliseconds.
 */
const HEALTHY_AFTER_MS = 5_000;

/**
 * Subscribes sent on a new socket before the server first answers. It holds at most 64 frames
 * while it checks the token, and a server whose `LIMIT_SUBSCRIPTIONS_PER_SOCKET` is raised past
 * that would otherwise close (1008) a device that follows many conversations on every reconnect.
 */
const EARLY_SUBSCRIBES = 32;
/** Connect timeouts a token provider call may stay unsettled before it is taken as hung (see `callTokenProvider`). */
const TOKEN_CALL_ABANDONED_AFTER = 4;

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
  /** Set while `open()` waits for a token: a second open then would make a socket nobody closes. */
  private opening = false;
  private wanted = true;
  private nextRef = 0;
  /** `close()` was called: nothing will be sent or answered any more. */
  private closed = false;
  /** `close()` has begun: no socket may be opened any more, also while it saves. */
  private closing = false;
  /**
   * A call of the token provider not settled yet, and when it began. A slow sign-in (a popup, a
   * silent refresh that takes a minute) is waited for again on the next attempt rather than
   * started twice; only one that has not settled for a long time is given up for a fresh call.
   */
  private tokenCall?: { promise: Promise<string | undefined>; since: number; ask: number };
  /** Calls made to the token provider, in order; each connection and refresh knows which was its own. */
  private tokenAsks = 0;
  /** The provider call whose token the current connection was opened with. */
  private connectedAsk = 0;
  /** Requests waiting to be sent until the new socket's first frame from the server. */
  private awaitingFirstFrame = false;
  /** Subscribes that wait for it too (see EARLY_SUBSCRIBES). */
  private laterSubscribes: Subscription[] = [];
  /** Watches the open socket for silence; replaced with each socket. */
  private watchdog?: SilenceWatchdog;
  /** Why the server last refused the connection; cleared once a session works. */
  private connectionRefusal?: { code: ErrorCode; message: string };
  /** Set when the server closed for good: requests fail with it until `connect()`. */
  private stopped?: SeqlineError;

  constructor(private readonly options: SeqlineClientOptions) {
    this.store = tolerantStore(options.store ?? new MemoryCursorStore());
    const Socket = (options.WebSocket ?? (globalThis as { WebSocket?: unknown }).WebSocket) as SocketFactory | undefined;
    if (!Socket) throw new Error('no WebSocket implementation: pass one as options.WebSocket (in Node: import WebSocket from "ws")');
    this.Socket = Socket;
    void this.open();
  }

  get state(): ConnectionState {
    return this.stateValue;
  }

  /**
   * Why the server last refused the connection (`UNAUTHORIZED` for a token refused or expired,
   * its message says which; ...), as its error frame said, until a session works again: what
   * tells "log in again" from "offline".
   * With a token provider the client keeps trying (a fresh token may pass); without one, a refused
   * token stops it, and every subscription's `refusal` says so too.
   *
   * @example
   * client.onStateChange(() => { if (client.refusal?.code === 'UNAUTHORIZED') showLogin(); });
   */
  get refusal(): { code: ErrorCode; message: string } | undefined {
    return this.connectionRefusal;
  }

  /** Calls `listener` whenever the connection state changes; returns a function that stops it. */
  onStateChange(listener: (state: ConnectionState) => void): () => void {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }

  /**
   * Follows a conversation, resuming from the stored cursor if there is one. A conversation
   * already followed gives the same subscription (each caller closes it once).
   */
  subscribe(conversationId: string): Subscription {
    // Nothing will be sent or received for it: ended at once, saying why.
    if (this.closed) return endedSubscription(conversationId, { code: ErrorCode.Unavailable, message: 'the client is closed' });
    if (!ID_PATTERN.test(conversationId)) return endedSubscription(conversationId, invalidId('conversationId', conversationId));
    const existing = this.subscriptions.get(conversationId);
    if (existing) {
      existing.holders++;
      return existing;
    }
    const subscription = new Subscription(conversationId, (s) => this.detach(s));
    this.subscriptions.set(conversationId, subscription);
    // A live client has one conversation to catch up on now.
    this.refreshState();
    void (async () => {
      const stored = await this.store.load(conversationId);
      // Closed (and perhaps subscribed to again) while loading: the server must not hear of it.
      if (this.subscriptions.get(conversationId) !== subscription) return;
      if (stored && subscription.view.cursor === undefined) {
        subscription.view.reset(stored);
        subscription.emit({ type: 'reset' });
        // Closed by a listener of that reset: not `loaded` yet, so its close told the server nothing, and nothing is to be sent.
        if (this.subscriptions.get(conversationId) !== subscription) return;
      }
      subscription.loaded = true;
      // Stopped for good: told like the subscriptions before it, and sent nothing until `connect()`.
      if (this.stopped) {
        subscription.refusal = { code: this.stopped.code, message: this.stopped.message };
        subscription.emit({ type: 'error', code: this.stopped.code, message: this.stopped.message });
        return;
      }
      // Before the server's first answer on a new socket, it waits with the others (see EARLY_SUBSCRIBES).
      if (this.awaitingFirstFrame) {
        if (!this.laterSubscribes.includes(subscription)) this.laterSubscribes.push(subscription);
      } else this.sendSubscribe(subscription);
    })();
    return subscription;
  }

  /** Posts a user message; `messageId` makes a retry (also after a reconnect) apply once. Resolves with its cursor. */
  async post(conversationId: string, text: string, options: { messageId?: string; authorId?: string } = {}): Promise<{ messageId: string; cursor: string }> {
    const messageId = options.messageId ?? randomId();
    requireIds({ conversationId, messageId });
    const ack = await this.request({ type: 'post', conversationId, messageId, text, ...(options.authorId ? { authorId: options.authorId } : {}) });
    return { messageId, cursor: (ack as { cursor: string }).cursor };
  }

  /** Cancels a streaming answer; it ends `aborted` for every device and the agent is told to stop. */
  async cancel(conversationId: string, messageId: string): Promise<void> {
    requireIds({ conversationId, messageId });
    await this.request({ type: 'cancel', conversationId, messageId });
  }

  /** Hands the socket a fresh token from the token provider, before the current one expires, without dropping the stream. */
  async refreshToken(): Promise<void> {
    const ask = ++this.tokenAsks;
    const token = await this.options.token?.();
    // A connection opened meanwhile with a token asked for after this one carries a newer one.
    if (token && this.connectedAsk < ask) await this.request({ type: 'auth', token }, ask);
  }

  /** Goes offline (keeps state); `connect()` resumes every conversation from its cursor. */
  disconnect(): void {
    this.wanted = false;
    clearTimeout(this.reconnectTimer);
    this.watchdog?.stop();
    this.socket?.close(1000, 'client disconnect');
    this.socket = undefined;
    for (const subscription of this.subscriptions.values()) subscription.live = false;
    this.setState('offline');
  }

  connect(): void {
    // A handler still registered after `close()` (an `online` event, an app resume) must not bring the client back.
    if (this.closing) return;
    this.wanted = true;
    this.stopped = undefined;
    // Connected, or a token on its way: opening another socket would leave one that is never closed.
    if (this.socket) return;
    if (this.opening) return this.setState('connecting');
    this.attempt = 0;
    void this.open();
  }

  /**
   * Disconnects for good, writing every conversation's state to the store first. Requests still
   * waiting for an answer reject with `UNAVAILABLE`, and every subscription ends (its `events()`
   * loops finish).
   */
  async close(): Promise<void> {
    this.closing = true;
    this.disconnect();
    await Promise.all([...this.subscriptions.values()].map((subscription) => this.save(subscription)));
    this.closed = true;
    const closed = new SeqlineError(ErrorCode.Unavailable, 'the client was closed before an answer came');
    for (const request of this.pending.values()) request.reject(closed);
    this.pending.clear();
    for (const subscription of [...this.subscriptions.values()]) subscription.end();
  }

  private async open(): Promise<void> {
    if (!this.wanted || this.opening || this.closing) return;
    // `connect()` during a back-off opens now; the timer must not open a second socket later.
    clearTimeout(this.reconnectTimer);
    this.opening = true;
    this.setState('connecting');
    let token: string | undefined;
    let ask = 0;
    try {
      const call = this.callTokenProvider();
      ask = call.ask;
      token = await withTimeout(call.promise, this.options.connectTimeoutMs ?? 15_000);
    } catch {
      // No token for now (offline, the identity service down): asked again after the next wait.
      this.opening = false;
      if (this.wanted) this.reconnectTimer = setTimeout(() => void this.open(), this.reconnectDelay(this.attempt++));
      return;
    }
    this.opening = false;
    if (!this.wanted || this.closing) return;
    // A socket left over would stay subscribed and feed every view twice.
    const stale = this.socket;
    this.socket = undefined;
    this.watchdog?.stop();
    stale?.close(1000, 'client reconnect');
    let socket: SocketLike;
    try {
      socket = new this.Socket(socketUrl(this.options.url, token));
    } catch (error) {
      // A URL the platform refuses (an `http:` service from an `https:` page): retrying cannot help.
      console.error('seqline: the WebSocket could not be created', error);
      this.setState('offline');
      this.stopForGood(new SeqlineError(ErrorCode.Unavailable, `the WebSocket could not be created (${error instanceof Error ? error.message : String(error)}): the client stopped`));
      return;
    }
    this.socket = socket;
    this.awaitingFirstFrame = false;
    this.laterSubscribes = [];
    let openedAt: number | undefined;
    const connectTimer = setTimeout(() => {
      socket.close(1000, 'connect timeout');
      lost(1006);
    }, this.options.connectTimeoutMs ?? 15_000);
    const lost = (code: number): void => {
      clearTimeout(connectTimer);
      if (this.socket !== socket) return;
      this.socket = undefined;
      watchdog?.stop();
      for (const subscription of this.subscriptions.values()) subscription.live = false;
      if (!this.wanted) return this.setState('offline');
      // Without a token provider, a refused token will not get better by itself.
      if (FINAL_CLOSE_CODES.has(code) || (code === CloseCode.Unauthorized && !this.options.token)) {
        this.setState('offline');
        return this.stopForGood(stoppedBy(code));
      }
      // `receive` resets the back-off on a frame that shows the session worked; an idle one counts after a while.
      if (openedAt !== undefined && Date.now() - openedAt >= HEALTHY_AFTER_MS) this.attempt = 0;
      const attempt = this.attempt++;
      const maxDelay = this.options.reconnect?.maxDelayMs ?? 15_000;
      let delay: number;
      if (code === CloseCode.TooManyConnections) {
        // Only closing another connection helps, which this client cannot do: try again rarely.
        delay = backoffDelay(attempt, maxDelay, maxDelay);
      } else if (attempt === 0 && (code === CloseCode.GoingAway || code === CloseCode.TokenExpired)) {
        // Going away asks for an immediate move to another instance; an expired token for a fresh one at once.
        // Only after a working session: the same code again right away means the next try fails alike.
        delay = backoffDelay(0, 100, 100);
      } else {
        delay = this.reconnectDelay(attempt);
      }
      this.reconnectTimer = setTimeout(() => void this.open(), delay);
      // Told once the reconnect is planned: a listener that calls `connect()` opens now, in its
      // place (`open` clears the timer), rather than beside it.
      this.setState('offline');
    };
    const heartbeat = this.options.heartbeat;
    const watchdog =
      heartbeat === false
        ? undefined
        : new SilenceWatchdog(
            heartbeat ?? {},
            () => this.sendFrame({ type: 'ping' }),
            () => {
              // A dead socket's close event may take minutes to come: the client moves on now, as if it had.
              socket.close(1000, 'no answer to ping');
              lost(1006);
            },
            // Refused for good, a subscription is never live: it waits for nothing.
            () => [...this.subscriptions.values()].some((subscription) => !subscription.live && subscription.refusal === undefined),
          );
    this.watchdog = watchdog;
    socket.onopen = () => {
      clearTimeout(connectTimer);
      this.connectedAsk = ask;
      // A token refresh still waiting whose token was asked for before this connection's is done:
      // this connection carries a newer token, and sending the older one could replace it (also
      // one that came back while this socket was opening). One asked for later goes as usual.
      for (const [ref, request] of this.pending) {
        if (request.tokenAsk === undefined || request.tokenAsk > ask) continue;
        this.pending.delete(ref);
        request.resolve({ type: 'authenticated', ref, expiresAt: null });
      }
      // The back-off is not reset here: the server refuses a token or a connection right after the upgrade.
      openedAt = Date.now();
      watchdog?.start();
      this.setState(this.subscriptions.size > 0 ? 'catching-up' : 'live');
      // Those still loading their stored state are sent, or wait with these, once loaded.
      const loaded = [...this.subscriptions.values()].filter((subscription) => subscription.loaded);
      for (const subscription of loaded.slice(0, EARLY_SUBSCRIBES)) this.sendSubscribe(subscription);
      this.laterSubscribes = loaded.slice(EARLY_SUBSCRIBES);
      const loading = loaded.length < this.subscriptions.size;
      // The server holds only so many frames while it checks the token (64, 1 MiB): requests
      // queued while offline, and subscribes past the first few, wait for its first answer, which
      // a ping asks for, so a long queue does not get the connection closed (1008) on every reconnect.
      if (this.pending.size > 0 || this.laterSubscribes.length > 0 || loading) {
        this.awaitingFirstFrame = true;
        this.sendFrame({ type: 'ping' });
      }
    };
    socket.onmessage = (event) => {
      if (this.socket !== socket) return;
      watchdog?.heard();
      if (this.awaitingFirstFrame) {
        this.awaitingFirstFrame = false;
        const later = this.laterSubscribes;
        this.laterSubscribes = [];
        // Not those closed meanwhile (nor one subscribed to again, which sent its own).
        for (const subscription of later) if (this.subscriptions.get(subscription.conversationId) === subscription) this.sendSubscribe(subscription);
        for (const [ref, request] of this.pending) this.sendFrame({ ...request.frame, ref });
      }
      this.receive(JSON.parse(String(event.data)) as ServerFrame);
    };
    socket.onerror = () => undefined;
    socket.onclose = (event) => lost(event.code);
  }

  /**
   * The token provider's answer: the call still under way if there is one, else a new call. A
   * call that has not settled within `TOKEN_CALL_ABANDONED_AFTER` connect timeouts is taken as
   * hung (a refresh that will never answer) and a new one is made.
   */
  private callTokenProvider(): { promise: Promise<string | undefined>; ask: number } {
    const abandonAfter = TOKEN_CALL_ABANDONED_AFTER * (this.options.connectTimeoutMs ?? 15_000);
    if (this.tokenCall && Date.now() - this.tokenCall.since <= abandonAfter) return this.tokenCall;
    let promise: Promise<string | undefined>;
    try {
      promise = Promise.resolve(this.options.token?.());
    } catch (error) {
      promise = Promise.reject(error as Error);
    }
    const call = { promise, since: Date.now(), ask: ++this.tokenAsks };
    const done = (): void => {
      if (this.tokenCall === call) this.tokenCall = undefined;
    };
    call.promise.then(done, done);
    this.tokenCall = call;
    return call;
  }

  /** No reconnect will follow: requests waiting for an answer would wait forever, so they fail with why. */
  private stopForGood(error: SeqlineError): void {
    this.stopped = error;
    this.connectionRefusal ??= { code: error.code, message: error.message };
    for (const request of this.pending.values()) request.reject(error);
    this.pending.clear();
    // Each conversation is told, as for one refused on its own, so views can say why they stopped.
    for (const subscription of this.subscriptions.values()) {
      subscription.refusal = { code: error.code, message: error.message };
      subscription.emit({ type: 'error', code: error.code, message: error.message });
    }
  }

  /** The back-off for reconnects, and for subscribe retries and repairs (`reconnect` bounds all three). */
  private reconnectDelay(attempt: number): number {
    return backoffDelay(attempt, this.options.reconnect?.minDelayMs ?? 250, this.options.reconnect?.maxDelayMs ?? 15_000);
  }

  private receive(frame: ServerFrame): void {
    // Any answer but an error shows the session works; a refused one gets an error frame, then its close.
    if (frame.type !== 'error') {
      this.attempt = 0;
      this.connectionRefusal = undefined;
    }
    switch (frame.type) {
      case 'snapshot': {
        const subscription = this.subscriptions.get(frame.conversationId);
        if (!subscription) return;
        subscription.view.reset({ cursor: frame.cursor, messages: frame.messages });
        subscription.refusal = undefined;
        subscription.repairing = false;
        subscription.retries = 0;
        // A retry or repair still waiting would only start this stream over.
        clearTimeout(subscription.retryTimer);
        forgetRepairsIfPast(subscription);
        subscription.head = frame.cursor;
        // Live first: a listener reads `subscription.live` as of this snapshot.
        this.refreshLive(subscription);
        subscription.emit({ type: 'reset' });
        void this.save(subscription);
        return;
      }
      case 'subscribed': {
        const subscription = this.subscriptions.get(frame.conversationId);
        if (!subscription) return;
        subscription.refusal = undefined;
        subscription.repairing = false;
        subscription.retries = 0;
        clearTimeout(subscription.retryTimer);
        subscription.head = frame.head;
        const wasLive = subscription.live;
        this.refreshLive(subscription);
        if (!wasLive && subscription.live) subscription.emit({ type: 'live' });
        return;
      }
      case 'event': {
        const subscription = this.subscriptions.get(frame.conversationId);
        if (!subscription || subscription.repairing) return;
        const { type: _type, ...event } = frame;
        switch (subscription.view.apply(event)) {
          case 'applied':
            forgetRepairsIfPast(subscription);
            this.refreshLive(subscription);
            subscription.emit({ type: 'event', event });
            // A listener that closed it on this event saved it as it let go: a save armed now would
            // hold back the saves of a subscription opened next, then write this one's older state.
            if (this.subscriptions.get(subscription.conversationId) === subscription) this.scheduleSave(subscription);
            return;
          case 'duplicate':
            return;
          case 'gap':
            // Ask the server for everything after our cursor again; it replays, or sends a snapshot if it no longer can.
            subscription.repairing = true;
            this.notLive(subscription);
            this.sendSubscribe(subscription);
            return;
          case 'mismatch':
            // The event follows our cursor but does not fit our messages, so the state we started from
            // is wrong (a store written against another history, say): replaying from the same cursor
            // would only repeat this at round-trip speed. Only a snapshot repairs it.
            this.notLive(subscription);
            this.repairFromSnapshot(subscription, event.cursor);
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
        // A frame over the server's limit (set lower than `maxFrameBytes`) is not read, so its
        // refusal names no request: the largest one waiting is the frame it refused.
        if (!frame.conversationId && frame.code === ErrorCode.FrameTooLarge) {
          this.refuseLargest(frame.message);
          return;
        }
        // Neither a request's nor a conversation's: the connection's own refusal, its close follows.
        if (!frame.conversationId) {
          this.connectionRefusal = { code: frame.code as ErrorCode, message: frame.message };
          return;
        }
        // The answer to an unsubscribe the server had no subscription for (one it refused): never
        // about a subscription made since, which it would mark refused.
        if (frame.code === ErrorCode.NotSubscribed) return;
        const subscription = this.subscriptions.get(frame.conversationId);
        if (!subscription) return;
        // The server ended this subscription: nothing arrives until it is answered again.
        subscription.live = false;
        this.refreshState();
        if (frame.code === ErrorCode.BadCursor || frame.code === ErrorCode.CursorExpired) {
          // Our stored state does not fit this log: start over from a snapshot.
          subscription.view.cursor = undefined;
          void this.store.remove(subscription.conversationId);
          this.sendSubscribe(subscription);
          return;
        }
        // Known before listeners hear of the error, so one that looks sees why.
        if (!isRetryable(frame.code)) subscription.refusal = { code: frame.code, message: frame.message };
        subscription.emit({ type: 'error', code: frame.code, message: frame.message });
        // A passing failure (the database down for a snapshot, a limit hit): subscribe again, backing off
        // (unless a listener closed it on the error).
        if (this.subscriptions.get(subscription.conversationId) !== subscription) return;
        if (isRetryable(frame.code)) {
          clearTimeout(subscription.retryTimer);
          const delay = this.reconnectDelay(subscription.retries++);
          subscription.retryTimer = setTimeout(() => {
            if (this.subscriptions.get(subscription.conversationId) === subscription) this.sendSubscribe(subscription);
          }, delay);
        } else {
          // Refused until the next reconnect: nothing to wait for, so it does not hold `state` at `catching-up`.
          this.refreshLive(subscription);
        }
        return;
      }
      default: {
        const unreachable: never = frame;
        return unreachable;
      }
    }
  }

  private request(frame: Record<string, unknown>, tokenAsk?: number): Promise<ServerFrame> {
    if (this.closed) return Promise.reject(new SeqlineError(ErrorCode.Unavailable, 'the client is closed'));
    if (this.stopped) return Promise.reject(this.stopped);
    const ref = `r${++this.nextRef}`;
    // The server cannot read the `ref` of a frame over its limit, so its error would never settle
    // this request, and every reconnect would send the frame again.
    const bytes = utf8Length(JSON.stringify({ ...frame, ref }));
    // Past the WebSocket's own cap the server closes the socket (1009) and each reconnect would send it again.
    const limit = Math.min(this.options.maxFrameBytes ?? DEFAULT_LIMITS.frameBytes, WEBSOCKET_MAX_FRAME_BYTES);
    if (bytes > limit) {
      return Promise.reject(new SeqlineError(ErrorCode.FrameTooLarge, `${String(frame.type)} frame is ${bytes} bytes; the limit is ${limit}`));
    }
    return new Promise((resolve, reject) => {
      this.pending.set(ref, { frame, resolve, reject, ...(tokenAsk === undefined ? {} : { tokenAsk }) });
      // Sent with the others once the server first answers.
      if (!this.awaitingFirstFrame) this.sendFrame({ ...frame, ref });
    });
  }

  private refuseLargest(message: string): void {
    let largest: [string, number] | undefined;
    for (const [ref, request] of this.pending) {
      const bytes = utf8Length(JSON.stringify({ ...request.frame, ref }));
      if (!largest || bytes > largest[1]) largest = [ref, bytes];
    }
    if (!largest) return;
    const request = this.pending.get(largest[0])!;
    this.pending.delete(largest[0]);
    request.reject(new SeqlineError(ErrorCode.FrameTooLarge, message));
  }

  private settle(ref: string, frame: ServerFrame): void {
    const request = this.pending.get(ref);
    if (!request) return;
    this.pending.delete(ref);
    if (frame.type === 'error') request.reject(new SeqlineError(frame.code as ErrorCode, frame.message, frame.messageStatus));
    else request.resolve(frame);
  }

  private sendSubscribe(subscription: Subscription): void {
    // Unsent (no socket, a retry timer after the client stopped), the refusal still says why it waits.
    if (!subscription.loaded || this.socket?.readyState !== OPEN) return;
    subscription.refusal = undefined;
    // Live again once this subscribe is answered: events still arriving for an earlier one (before
    // the server read an unsubscribe, or on the socket before) say nothing of where the head is now.
    subscription.head = undefined;
    const after = subscription.view.cursor;
    this.sendFrame({ type: 'subscribe', conversationId: subscription.conversationId, ...(after ? { after } : {}) });
  }

  /** Drops the view's state and asks for a snapshot, at once the first time, then backing off until the view gets past `misfit`. */
  private repairFromSnapshot(subscription: Subscription, misfit: string): void {
    subscription.repairing = true;
    subscription.misfit = misfit;
    subscription.view.cursor = undefined;
    void this.store.remove(subscription.conversationId);
    clearTimeout(subscription.retryTimer);
    const repairs = subscription.repairs++;
    if (repairs === 0) {
      this.sendSubscribe(subscription);
      return;
    }
    const delay = this.reconnectDelay(repairs - 1);
    subscription.retryTimer = setTimeout(() => {
      // A reconnect meanwhile already asked for the snapshot.
      if (this.subscriptions.get(subscription.conversationId) === subscription && subscription.repairing) this.sendSubscribe(subscription);
    }, delay);
  }

  private sendFrame(frame: Record<string, unknown>): void {
    if (this.socket?.readyState === OPEN) this.socket.send(JSON.stringify(frame));
  }

  private detach(subscription: Subscription): void {
    if (this.subscriptions.get(subscription.conversationId) !== subscription) return;
    this.subscriptions.delete(subscription.conversationId);
    void this.save(subscription);
    // Its subscribe was never sent (not loaded yet, or waiting for the server's first answer): nothing to undo.
    const deferred = this.laterSubscribes.indexOf(subscription);
    if (deferred >= 0) this.laterSubscribes.splice(deferred, 1);
    else if (subscription.loaded) this.sendFrame({ type: 'unsubscribe', conversationId: subscription.conversationId });
    // The one conversation still catching up may be the one gone.
    this.refreshState();
  }

  /** Events are being dropped until a repair answers: neither the subscription nor the client is live meanwhile. */
  private notLive(subscription: Subscription): void {
    subscription.live = false;
    this.refreshState();
  }

  private refreshLive(subscription: Subscription): void {
    subscription.updateLive();
    this.refreshState();
  }

  /** `live` once every conversation is live or refused; only while a socket is open. */
  private refreshState(): void {
    if (this.socket?.readyState !== OPEN) return;
    const all = [...this.subscriptions.values()].every((s) => s.live || s.refusal !== undefined);
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
    for (const listener of this.stateListeners) {
      try {
        listener(state);
      } catch (error) {
        // An app listener that throws must not stop the reconnect that follows a state change.
        console.error('seqline: a state listener threw', error);
      }
    }
  }
}

/** Once the view has got past the event that did not fit (or onto another log), later misfits start the back-off afresh. */
function forgetRepairsIfPast(subscription: Subscription): void {
  if (subscription.misfit === undefined || subscription.view.cursor === undefined) return;
  const at = parseCursor(subscription.view.cursor);
  const misfit = parseCursor(subscription.misfit);
  if (at && misfit && at.epoch === misfit.epoch && at.seq < misfit.seq) return;
  subscription.repairs = 0;
  subscription.misfit = undefined;
}

function randomId(): string {
  const random = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto?.randomUUID;
  return random ? random.call((globalThis as { crypto: object }).crypto) : `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 10)}`;
}

/** A subscription that will never be sent, ended at once with why. */
function endedSubscription(conversationId: string, refusal: { code: ErrorCode; message: string }): Subscription {
  const ended = new Subscription(conversationId, () => undefined);
  ended.refusal = refusal;
  ended.end();
  return ended;
}

/** The refusal the server would give, without asking it: an invalid id is never sent. */
function invalidId(field: string, value: string): { code: ErrorCode; message: string } {
  return { code: ErrorCode.ValidationFailed, message: `${field} ${JSON.stringify(value.slice(0, 140))} is invalid: ids are 1-128 characters of A-Z a-z 0-9 _ - (not __proto__)` };
}

function requireIds(ids: Record<string, string>): void {
  for (const [field, value] of Object.entries(ids)) {
    if (!ID_PATTERN.test(value)) {
      const refusal = invalidId(field, value);
      throw new SeqlineError(refusal.code, refusal.message);
    }
  }
}

/** Why the client stopped after the server closed with `closeCode` for good. */
function stoppedBy(closeCode: number): SeqlineError {
  return closeCode === CloseCode.Unauthorized
    ? new SeqlineError(ErrorCode.Unauthorized, 'the server refused the token and no token provider can give another: the client stopped')
    : new SeqlineError(ErrorCode.FrameTooLarge, `the server closed the connection for good (${closeCode}): the client stopped`);
}

/** `value`, or a rejection once `ms` have passed without it. */
async function withTimeout<T>(value: Promise<T> | T, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([value, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
