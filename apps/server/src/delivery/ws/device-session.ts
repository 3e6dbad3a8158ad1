import type { Settings } from '@seqline/config';
import {
  ClientFrameSchema,
  CloseCode,
  ErrorCode,
  ID_PATTERN,
  parseFrame,
  SeqlineError,
  toSeqlineError,
  type ClientFrame,
  type ServerFrame,
} from '@seqline/protocol';
import type { Logger } from 'pino';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import type { ConversationCommands } from '../../ingest/conversation-commands.service.js';
import type { FeedSink, FeedSubscription } from '../live/conversation-feed.js';
import { writableBatching } from '../live/writable-flow.js';
import { SendBound } from '../live/send-bound.js';
import { PING_FRAME } from './text-frame.js';
import type { SubscriptionService } from '../subscription.service.js';
import type { MetricsService } from '../../metrics/metrics.service.js';
import type { Authenticator } from '../../auth/authenticator.service.js';
import { msUntilExpiry, requireRight, userOf, type Principal } from '../../auth/principal.js';
import { rateKey, type RateLimiter } from '../../auth/rate-limiter.js';
import type { SubscribeAllowance } from '../../auth/subscribe-allowance.js';

export interface DeviceSessionDeps {
  subscriptions: SubscriptionService;
  commands: ConversationCommands;
  metrics: MetricsService;
  authenticator: Authenticator;
  /** Shared across sockets, keyed by user, so a device cannot dodge it by opening more sockets. */
  postLimiter: RateLimiter;
  subscribes: SubscribeAllowance;
  settings: Settings;
  logger: Logger;
}

/** One conversation a socket follows; `ended` is set as soon as the device no longer wants it, even mid-open. */
interface SocketSubscription {
  ended: boolean;
  feed?: FeedSubscription;
}

/** Ticks a silent device with frames still unsent is kept while no write to it finishes (one large frame over a slow link). */
const BACKLOG_TICKS = 3;

/** One device's WebSocket: its subscriptions, its commands, its heartbeat. */
export class DeviceSession {
  private readonly subscriptions = new Map<string, SocketSubscription>();
  private alive = true;
  /** A frame arrived since the last heartbeat tick. */
  private heard = false;
  /** Bytes the socket had handed to the network at the last tick that found the device silent. */
  private handedOverAtTick = 0;
  /** Ticks in a row, since the ping, in which no write to the device finished. */
  private quietTicks = 0;
  private readonly bound: SendBound;
  private expiry?: NodeJS.Timeout;
  private disposed = false;
  private static nextId = 0;
  private readonly id = `s${++DeviceSession.nextId}`;

  constructor(
    private readonly socket: WebSocket,
    private principal: Principal,
    private readonly deps: DeviceSessionDeps,
  ) {
    this.bound = new SendBound(deps.settings.ws.maxBufferedBytes);
    socket.on('message', (data, isBinary) => this.receiveFrame(data as Buffer, isBinary));
    this.armExpiry();
    socket.on('pong', () => (this.alive = true));
    socket.on('close', () => this.dispose());
  }

  /** Ends the session with a close code a client understands (e.g. going away on shutdown). */
  close(code: number, reason: string): void {
    this.dispose();
    this.socket.close(code, reason);
  }

  /** Called by the gateway on every heartbeat tick: one timer for all sockets. */
  beat(): void {
    if (this.heard) {
      // The device spoke since the last tick (the device SDK pings when the server is silent): it
      // is there, and a ping of ours would only double the idle traffic. It must answer, or speak,
      // by the tick after next.
      this.heard = false;
      this.alive = true;
      return;
    }
    if (!this.alive) {
      // A device still reading a backlog (a large snapshot, a catch-up over a slow link) cannot
      // answer a ping queued behind it. Writes finished since the last tick say it is there (not
      // a smaller backlog: a catch-up refills it as it drains); one large frame still being
      // written shows none, so a backlog buys a few ticks more. A dead peer takes at most what
      // the kernel's send buffer holds, then nothing, and is dropped after those.
      const handedOver = this.handedOver();
      const progressed = handedOver > this.handedOverAtTick;
      this.handedOverAtTick = handedOver;
      this.quietTicks = progressed ? 0 : this.quietTicks + 1;
      if (progressed || (this.socket.bufferedAmount > 0 && this.quietTicks < BACKLOG_TICKS)) return;
      this.deps.logger.info('device missed a heartbeat; closing');
      this.dispose();
      this.socket.terminate();
      return;
    }
    this.alive = false;
    this.quietTicks = 0;
    // The same two bytes for every socket: a round of pings allocates nothing per device.
    if (this.socket.readyState === this.socket.OPEN) this.tcp?.write(PING_FRAME);
    // After the ping: one the kernel takes at once is not taken for the device reading.
    this.handedOverAtTick = this.handedOver();
  }

  receiveFrame(data: Buffer, isBinary: boolean): void {
    // ws reads frames until the closing handshake ends (up to 30 s): a socket the service closed
    // (its token expired, it fell behind, the instance stops) must not post, cancel or read meanwhile.
    if (this.disposed) return;
    this.heard = true;
    void this.receive(data, isBinary);
  }

  /** Ends the socket when its token expires, unless a fresh one arrives first. */
  private armExpiry(): void {
    clearTimeout(this.expiry);
    // A fresh token checked after the socket closed: a timer now would hold the session until it expires.
    if (this.disposed) return;
    const expiresIn = msUntilExpiry(this.principal);
    if (expiresIn === null) return;
    this.expiry = setTimeout(() => {
      // A token that lasts longer than one timer can wait (about 24.8 days) is waited out in turns.
      if (this.principal.kind !== 'open' && this.principal.expiresAt && this.principal.expiresAt.getTime() - Date.now() > 1_000) return this.armExpiry();
      this.close(CloseCode.TokenExpired, 'token expired: reconnect with a fresh token');
    }, expiresIn);
  }

  private dispose(): void {
    this.disposed = true;
    clearTimeout(this.expiry);
    for (const conversationId of [...this.subscriptions.keys()]) this.end(conversationId);
  }

  /** Ends the socket's subscription to a conversation, wherever it is in its life. */
  private end(conversationId: string, only?: SocketSubscription): void {
    const subscription = this.subscriptions.get(conversationId);
    if (!subscription || (only && subscription !== only)) return;
    this.subscriptions.delete(conversationId);
    subscription.ended = true;
    subscription.feed?.close();
    this.deps.metrics.subscriptions.dec();
  }

  private async receive(data: Buffer, isBinary: boolean): Promise<void> {
    let ref: string | undefined;
    let conversationId: string | undefined;
    try {
      if (isBinary) throw new SeqlineError(ErrorCode.BadFrame, 'frames are JSON text, not binary');
      const frame = parseFrame(ClientFrameSchema, data, { what: 'frame', maxBytes: this.deps.settings.limits.frameBytes });
      ref = frame.ref;
      conversationId = 'conversationId' in frame ? frame.conversationId : undefined;
      await this.dispatch(frame);
    } catch (error) {
      // A refused frame's error still names its `ref` and conversation when the frame has them, so the device knows which request failed.
      if (ref === undefined && data.length <= this.deps.settings.limits.frameBytes) ({ ref, conversationId } = peekAddress(data));
      this.sendError(error, ref, conversationId);
    }
  }

  private async dispatch(frame: ClientFrame): Promise<void> {
    switch (frame.type) {
      case 'subscribe':
        requireRight(this.principal, frame.conversationId, 'read');
        this.takeSubscribeAllowance();
        return this.subscribe(frame.conversationId, frame.after, frame.ref);
      case 'unsubscribe': {
        if (!this.subscriptions.has(frame.conversationId)) throw new SeqlineError(ErrorCode.NotSubscribed, `not subscribed to ${frame.conversationId}`);
        this.end(frame.conversationId);
        this.send({ type: 'unsubscribed', ref: frame.ref, conversationId: frame.conversationId });
        return;
      }
      case 'post': {
        requireRight(this.principal, frame.conversationId, 'post');
        this.takeWriteAllowance();
        // A device token speaks for its user; only open or admin connections may name an author.
        const author = { role: 'user' as const, id: userOf(this.principal) ?? frame.authorId ?? 'device' };
        const result = await this.deps.commands.post(frame.conversationId, frame.messageId, author, frame.text);
        this.send({ type: 'ack', ref: frame.ref, conversationId: frame.conversationId, messageId: frame.messageId, cursor: result.cursor });
        return;
      }
      case 'cancel': {
        requireRight(this.principal, frame.conversationId, 'cancel');
        this.takeWriteAllowance();
        const result = await this.deps.commands.cancel(frame.conversationId, frame.messageId, 'cancelled by a device');
        this.send({ type: 'ack', ref: frame.ref, conversationId: frame.conversationId, messageId: frame.messageId, cursor: result.cursor });
        return;
      }
      case 'ping':
        this.send({ type: 'pong', ref: frame.ref });
        return;
      case 'auth': {
        // A token check is costly too, but per socket: see SubscribeAllowance.
        this.deps.subscribes.takeRefresh(this.id);
        const next = await this.deps.authenticator.verifyToken(frame.token);
        if (userOf(next) !== userOf(this.principal)) throw new SeqlineError(ErrorCode.Forbidden, 'a fresh token must be for the same user');
        this.principal = next;
        this.armExpiry();
        // Subscriptions the new token no longer grants end here.
        for (const conversationId of [...this.subscriptions.keys()]) {
          try {
            requireRight(next, conversationId, 'read');
          } catch (error) {
            this.end(conversationId);
            this.sendError(error, undefined, conversationId);
          }
        }
        this.send({ type: 'authenticated', ref: frame.ref, expiresAt: next.kind === 'open' ? null : (next.expiresAt?.toISOString() ?? null) });
        return;
      }
      default: {
        const unreachable: never = frame;
        throw new Error(`unhandled frame ${JSON.stringify(unreachable)}`);
      }
    }
  }

  /** Posts and cancels count together, per user (per socket without one): each is a write to a conversation. */
  private takeWriteAllowance(): void {
    if (!this.deps.postLimiter.take(rateKey(userOf(this.principal), this.id))) {
      throw new SeqlineError(ErrorCode.RateLimited, `over ${this.deps.settings.limits.devicePostsPerSecond} posts and cancels per second; retry shortly`);
    }
  }

  /**
   * Subscribes count per user, across the user's sockets and SSE streams: each costs log reads or
   * a snapshot, and a device sending them in a loop, or reconnecting in one, would otherwise load
   * the log every instance shares.
   */
  private takeSubscribeAllowance(): void {
    this.deps.subscribes.take(userOf(this.principal), this.id);
  }

  private async subscribe(conversationId: string, after: string | undefined, ref: string | undefined): Promise<void> {
    if (!this.subscriptions.has(conversationId) && this.subscriptions.size >= this.deps.settings.limits.subscriptionsPerSocket) {
      throw new SeqlineError(ErrorCode.TooManySubscriptions, `a socket may hold ${this.deps.settings.limits.subscriptionsPerSocket} subscriptions`);
    }
    this.end(conversationId);
    const subscription: SocketSubscription = { ended: false };
    this.subscriptions.set(conversationId, subscription);
    this.deps.metrics.subscriptions.inc();
    let opened;
    try {
      opened = await this.deps.subscriptions.open(conversationId, after);
    } catch (error) {
      // Replaced by a later subscribe (or ended) meanwhile: the device is not told of a failure it no longer waits for.
      const current = this.subscriptions.get(conversationId) === subscription;
      this.end(conversationId, subscription);
      if (current) this.sendError(error, ref, conversationId);
      return;
    }
    // The device left, unsubscribed or subscribed again while this one was opening.
    if (subscription.ended || this.socket.readyState !== this.socket.OPEN) {
      opened.cancel();
      this.end(conversationId, subscription);
      return;
    }
    const { start } = opened;
    if (start.mode === 'snapshot') {
      const snapshot = JSON.stringify({ type: 'snapshot', ref, conversationId, cursor: start.cursor, messages: start.messages } satisfies ServerFrame);
      if (this.sendBytes(snapshot)) this.bound.snapshotSent(Buffer.byteLength(snapshot));
    } else this.send({ type: 'subscribed', ref, conversationId, cursor: start.cursor, head: start.head });
    // That frame found the socket's buffer past the bound and cut it off: nothing to attach.
    if (subscription.ended) {
      opened.cancel();
      return;
    }
    subscription.feed = opened.attach({
      send: (event) => !subscription.ended && this.sendFramed(event.wsFrame),
      ...this.batching(),
      fail: (error) => {
        this.end(conversationId, subscription);
        this.sendError(error, undefined, conversationId);
      },
    });
  }

  /**
   * ws keeps the TCP socket private. Corking it, waiting for it to drain and writing whole frames
   * to it are safe: without compression (the gateway never enables it) ws writes each frame
   * whole and at once, so frames written here and by ws keep their order, and ws's
   * `bufferedAmount` counts both.
   */
  private get tcp(): Duplex | undefined {
    return (this.socket as unknown as { _socket?: Duplex | null })._socket ?? undefined;
  }

  /** Bytes written to the socket that left its buffer for the network (Node counts buffered ones as written). */
  private handedOver(): number {
    const tcp = this.tcp as (Duplex & { bytesWritten?: number }) | undefined;
    return tcp ? (tcp.bytesWritten ?? 0) - tcp.writableLength : 0;
  }

  private batching(): Pick<FeedSink, 'batch' | 'flow'> {
    const tcp = this.tcp;
    return tcp ? writableBatching(tcp, () => this.socket.bufferedAmount, this.deps.settings.ws.maxBufferedBytes) : {};
  }

  private send(frame: ServerFrame): boolean {
    return this.sendBytes(JSON.stringify(frame));
  }

  /** Sends a frame made by `textFrame`: the same bytes for every device, written as they are. (An open ws always has its TCP socket.) */
  private sendFramed(frame: Buffer): boolean {
    const tcp = this.tcp;
    return tcp !== undefined && this.sendBytes(frame, tcp);
  }

  /** Sends a text frame, cutting off a device past its send bound (see `SendBound`). */
  private sendBytes(data: Buffer | string, framedTo?: Duplex): boolean {
    if (this.socket.readyState !== this.socket.OPEN) return false;
    const backlog = this.socket.bufferedAmount;
    if (framedTo) framedTo.write(data);
    else this.socket.send(data, { binary: false });
    if (this.bound.exceeded(backlog)) {
      this.deps.logger.warn({ buffered: this.socket.bufferedAmount }, 'slow device disconnected');
      this.deps.metrics.slowConsumers.inc();
      this.close(CloseCode.SlowConsumer, 'slow consumer: resume from your cursor');
      return false;
    }
    return true;
  }

  private sendError(error: unknown, ref: string | undefined, conversationId: string | undefined): void {
    if (!(error instanceof SeqlineError)) this.deps.logger.error({ err: error }, 'device frame failed');
    this.send({ type: 'error', ref, conversationId, ...toSeqlineError(error, ErrorCode.Unavailable).toBody() });
  }
}

/** `ref` and `conversationId` of a frame that was refused, where they are well-formed. */
function peekAddress(data: Buffer): { ref?: string; conversationId?: string } {
  try {
    const json = JSON.parse(data.toString('utf8')) as unknown;
    if (typeof json !== 'object' || json === null) return {};
    const { ref, conversationId } = json as Record<string, unknown>;
    return {
      ...(typeof ref === 'string' && ref.length <= 64 ? { ref } : {}),
      ...(typeof conversationId === 'string' && ID_PATTERN.test(conversationId) ? { conversationId } : {}),
    };
  } catch {
    return {};
  }
}
