import { jest } from '@jest/globals';
import { EventEmitter } from 'node:events';
import { loadEnv, settingsFrom } from '@seqline/config';
import { CloseCode, ErrorCode, SeqlineError } from '@seqline/protocol';
import { pino } from 'pino';
import type { WebSocket } from 'ws';
import { MetricsService } from '../../metrics/metrics.service.js';
import type { Principal } from '../../auth/principal.js';
import { RateLimiter } from '../../auth/rate-limiter.js';
import { SubscribeAllowance } from '../../auth/subscribe-allowance.js';
import type { OpenSubscription, SubscriptionService } from '../subscription.service.js';
import { DeviceSession, type DeviceSessionDeps } from './device-session.js';

/** The TCP socket ws keeps inside: frames made once for every device are written to it directly. */
class FakeTcp extends EventEmitter {
  writableLength = 0;
  /** As Node counts it: bytes written, buffered ones included. */
  bytesWritten = 0;
  readonly writes: Buffer[] = [];
  write(data: Buffer): boolean {
    this.writes.push(data);
    return true;
  }
  cork(): void {}
  uncork(): void {}
}

/** As much of a ws WebSocket as a session uses. */
class FakeSocket extends EventEmitter {
  readonly OPEN = 1;
  readyState = 1;
  bufferedAmount = 0;
  readonly frames: Record<string, unknown>[] = [];
  closed?: { code: number; reason: string };
  terminated = false;
  readonly _socket = new FakeTcp();

  send(data: string): void {
    this.frames.push(JSON.parse(data) as Record<string, unknown>);
  }
  close(code: number, reason: string): void {
    this.closed = { code, reason };
    this.readyState = 3;
  }
  terminate(): void {
    this.terminated = true;
    this.readyState = 3;
  }
  /** A frame from the device. */
  receive(frame: Record<string, unknown>): void {
    this.emit('message', Buffer.from(JSON.stringify(frame)), false);
  }
}

/** A subscription whose opening the test finishes when it chooses. */
function pendingOpen() {
  let finish!: (opened: OpenSubscription) => void;
  let refuse!: (error: unknown) => void;
  const promise = new Promise<OpenSubscription>((resolve, reject) => {
    finish = resolve;
    refuse = reject;
  });
  const opened = { start: { mode: 'resume' as const, cursor: 'e-4', head: 'e-4' }, attach: jest.fn(() => ({ close: jest.fn() })), cancel: jest.fn() };
  return { promise, opened, finish: () => finish(opened as unknown as OpenSubscription), refuse };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

function start(env: Record<string, string> = {}) {
  const socket = new FakeSocket();
  const open = pendingOpen();
  const metrics = new MetricsService();
  const deps = {
    subscriptions: { open: jest.fn(() => open.promise) } as unknown as SubscriptionService,
    metrics,
    subscribes: new SubscribeAllowance(settingsFrom(loadEnv({ LIMIT_DEVICE_SUBSCRIBES_PER_SECOND: '1000' }))),
    settings: settingsFrom(loadEnv(env)),
    logger: pino({ level: 'silent' }),
  } as unknown as DeviceSessionDeps;
  const session = new DeviceSession(socket as unknown as WebSocket, { kind: 'open' }, deps);
  const openSubscriptions = async () => (await metrics.subscriptions.get()).values[0]?.value ?? 0;
  return { socket, session, open, openSubscriptions };
}

describe('DeviceSession subscribing', () => {
  it('attaches the feed right after the start frame', async () => {
    const { socket, open, openSubscriptions } = start();
    socket.receive({ type: 'subscribe', ref: 's1', conversationId: 'c1', after: 'e-2' });
    open.finish();
    await settle();
    expect(socket.frames).toEqual([{ type: 'subscribed', ref: 's1', conversationId: 'c1', cursor: 'e-4', head: 'e-4' }]);
    expect(open.opened.attach).toHaveBeenCalledTimes(1);
    expect(open.opened.cancel).not.toHaveBeenCalled();
    expect(await openSubscriptions()).toBe(1);
  });

  it('cuts off a socket whose start frame finds its buffer past the bound, and never attaches the feed', async () => {
    const { socket, open, openSubscriptions } = start({ WS_MAX_BUFFERED_BYTES: '1000' });
    socket.receive({ type: 'subscribe', ref: 's1', conversationId: 'c1', after: 'e-2' });
    socket.bufferedAmount = 5_000;
    open.finish();
    await settle();
    expect(socket.closed).toEqual({ code: CloseCode.SlowConsumer, reason: 'slow consumer: resume from your cursor' });
    expect(open.opened.attach).not.toHaveBeenCalled();
    expect(open.opened.cancel).toHaveBeenCalledTimes(1);
    expect(await openSubscriptions()).toBe(0);
  });

  it('gives up a subscription the device left while it was opening', async () => {
    const { socket, open, openSubscriptions } = start();
    socket.receive({ type: 'subscribe', ref: 's1', conversationId: 'c1' });
    await settle();
    socket.receive({ type: 'unsubscribe', ref: 'u1', conversationId: 'c1' });
    open.finish();
    await settle();
    expect(socket.frames).toEqual([{ type: 'unsubscribed', ref: 'u1', conversationId: 'c1' }]);
    expect(open.opened.attach).not.toHaveBeenCalled();
    expect(open.opened.cancel).toHaveBeenCalledTimes(1);
    expect(await openSubscriptions()).toBe(0);
  });

  it('answers a subscription that cannot open with the error, naming its ref and conversation', async () => {
    const { socket, open, openSubscriptions } = start();
    socket.receive({ type: 'subscribe', ref: 's1', conversationId: 'c1', after: 'old-9' });
    open.refuse(new SeqlineError(ErrorCode.CursorExpired, 'the log was recreated; take a snapshot'));
    await settle();
    expect(socket.frames).toEqual([{ type: 'error', ref: 's1', conversationId: 'c1', code: 'CURSOR_EXPIRED', message: 'the log was recreated; take a snapshot' }]);
    expect(socket.closed).toBeUndefined();
    expect(await openSubscriptions()).toBe(0);
  });

  it('does not send the error of a subscription the device left while it was opening', async () => {
    const { socket, open, openSubscriptions } = start();
    socket.receive({ type: 'subscribe', ref: 's1', conversationId: 'c1', after: 'e-2' });
    await settle();
    socket.receive({ type: 'unsubscribe', ref: 'u1', conversationId: 'c1' });
    open.refuse(new SeqlineError(ErrorCode.Unavailable, 'the log could not be read'));
    await settle();
    expect(socket.frames).toEqual([{ type: 'unsubscribed', ref: 'u1', conversationId: 'c1' }]);
    expect(await openSubscriptions()).toBe(0);
  });
});

describe('DeviceSession snapshots over the buffer bound', () => {
  it('lets a socket hold its largest snapshot over the bound, not the sum of snapshots it does not read', async () => {
    const socket = new FakeSocket();
    // Every send stays unsent: the device reads nothing.
    socket.send = function (this: FakeSocket, data: string) {
      this.frames.push(JSON.parse(data) as Record<string, unknown>);
      this.bufferedAmount += Buffer.byteLength(data);
    };
    const snapshot = () => ({
      start: { mode: 'snapshot' as const, cursor: 'e-4', messages: [{ id: 'm', text: 'x'.repeat(5_000) }] },
      attach: jest.fn(() => ({ close: jest.fn() })),
      cancel: jest.fn(),
    });
    const deps = {
      subscriptions: { open: jest.fn(async () => snapshot() as unknown as OpenSubscription) } as unknown as SubscriptionService,
      metrics: new MetricsService(),
      subscribes: new SubscribeAllowance(settingsFrom(loadEnv({ LIMIT_DEVICE_SUBSCRIBES_PER_SECOND: '1000' }))),
      settings: settingsFrom(loadEnv({ WS_MAX_BUFFERED_BYTES: '1000' })),
      logger: pino({ level: 'silent' }),
    } as unknown as DeviceSessionDeps;
    new DeviceSession(socket as unknown as WebSocket, { kind: 'open' }, deps);
    // A snapshot larger than the bound goes out, and so does the next one while the first is unsent.
    for (let i = 0; i < 2; i++) {
      socket.receive({ type: 'subscribe', conversationId: 'c1' });
      await settle();
    }
    expect(socket.frames.map((frame) => frame.type)).toEqual(['snapshot', 'snapshot']);
    expect(socket.closed).toBeUndefined();
    // A third finds two snapshots unsent, more than the bound and the largest snapshot: cut off.
    socket.receive({ type: 'subscribe', conversationId: 'c1' });
    await settle();
    expect(socket.closed?.code).toBe(CloseCode.SlowConsumer);
  });
});

describe('DeviceSession heartbeat', () => {
  const pings = (socket: FakeSocket) => socket._socket.writes.length;

  it('pings a silent device each tick and drops one that answered neither the ping nor with a frame', () => {
    const { socket, session } = start();
    session.beat();
    expect(pings(socket)).toBe(1);
    socket.emit('pong');
    session.beat();
    expect(pings(socket)).toBe(2);
    session.beat();
    expect(socket.terminated).toBe(true);
    expect(pings(socket)).toBe(2);
  });

  it('keeps a device that is still reading a backlog (its ping queued behind it), though a catch-up refills it, and drops it once nothing more leaves', () => {
    const { socket, session } = start();
    const tcp = socket._socket;
    // A catch-up's sawtooth: the backlog is as large at each tick, but bytes keep leaving.
    tcp.bytesWritten = 3_000_000;
    tcp.writableLength = 2_000_000;
    session.beat();
    for (const written of [4_000_000, 5_000_000]) {
      tcp.bytesWritten = written;
      session.beat();
      expect(socket.terminated).toBe(false);
    }
    session.beat();
    expect(socket.terminated).toBe(true);
  });

  it('keeps a silent device a few ticks while one large frame is still being written to it, then drops it', () => {
    const { socket, session } = start();
    socket.bufferedAmount = 4_000_000;
    session.beat();
    for (let tick = 0; tick < 2; tick++) {
      session.beat();
      expect(socket.terminated).toBe(false);
    }
    session.beat();
    expect(socket.terminated).toBe(true);
  });

  it('drops a silent device that took no bytes since the ping and never answered it', () => {
    const { socket, session } = start();
    socket._socket.bytesWritten = 500_000;
    session.beat();
    session.beat();
    expect(socket.terminated).toBe(true);
  });

  it('does not ping a device that sent a frame since the last tick, and still drops it once it goes quiet', async () => {
    const { socket, session } = start();
    for (let tick = 0; tick < 3; tick++) {
      socket.receive({ type: 'ping' });
      await settle();
      session.beat();
    }
    expect(pings(socket)).toBe(0);
    expect(socket.frames.filter((frame) => frame.type === 'pong')).toHaveLength(3);
    // Quiet from here (the last tick counted its last frame): one ping, then it is dropped.
    session.beat();
    expect(pings(socket)).toBe(1);
    expect(socket.terminated).toBe(false);
    session.beat();
    expect(socket.terminated).toBe(true);
  });
});

describe('DeviceSession token expiry', () => {
  it('keeps a socket whose token lasts longer than a timer can wait (about 24.8 days), and ends it when the token expires', () => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'queueMicrotask', 'setImmediate'] });
    try {
      const socket = new FakeSocket();
      const deps = { metrics: new MetricsService(), subscribes: new SubscribeAllowance(settingsFrom(loadEnv({ LIMIT_DEVICE_SUBSCRIBES_PER_SECOND: '1000' }))), settings: settingsFrom(loadEnv({})), logger: pino({ level: 'silent' }) } as unknown as DeviceSessionDeps;
      const day = 24 * 3_600_000;
      const device = { kind: 'device' as const, userId: 'ada', rights: new Map(), expiresAt: new Date(Date.now() + 60 * day) };
      new DeviceSession(socket as unknown as WebSocket, device, deps);
      jest.advanceTimersByTime(59 * day);
      expect(socket.closed).toBeUndefined();
      jest.advanceTimersByTime(day);
      expect(socket.closed).toEqual({ code: 4402, reason: 'token expired: reconnect with a fresh token' });
    } finally {
      jest.useRealTimers();
    }
  });
});

describe('DeviceSession after the service closed the socket', () => {
  it('neither posts, cancels nor subscribes for a device that keeps sending frames once its token expired', async () => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'queueMicrotask', 'setImmediate'] });
    try {
      const socket = new FakeSocket();
      const commands = { post: jest.fn(async () => ({ cursor: 'e-1' })), cancel: jest.fn(async () => ({ cursor: 'e-2' })) };
      const subscriptions = { open: jest.fn() };
      const settings = settingsFrom(loadEnv({}));
      const deps = {
        metrics: new MetricsService(),
        commands,
        subscriptions,
        postLimiter: new RateLimiter(1000),
        subscribes: new SubscribeAllowance(settings),
        settings,
        logger: pino({ level: 'silent' }),
      } as unknown as DeviceSessionDeps;
      const rights = new Map([['c1', new Set(['read', 'post', 'cancel'] as const)]]);
      new DeviceSession(socket as unknown as WebSocket, { kind: 'device', userId: 'ada', rights, expiresAt: new Date(Date.now() + 1_000) }, deps);
      socket.receive({ type: 'post', ref: 'p0', conversationId: 'c1', messageId: 'q0', text: 'in time' });
      await settle();
      expect(commands.post).toHaveBeenCalledTimes(1);
      jest.advanceTimersByTime(1_000);
      expect(socket.closed).toEqual({ code: 4402, reason: 'token expired: reconnect with a fresh token' });
      // A client that never answers the close frame: ws still hands its frames over until the handshake times out.
      socket.readyState = 2;
      socket.receive({ type: 'post', ref: 'p1', conversationId: 'c1', messageId: 'q1', text: 'too late' });
      socket.receive({ type: 'cancel', ref: 'c1', conversationId: 'c1', messageId: 'q0' });
      socket.receive({ type: 'subscribe', ref: 's1', conversationId: 'c1' });
      await settle();
      expect(commands.post).toHaveBeenCalledTimes(1);
      expect(commands.cancel).not.toHaveBeenCalled();
      expect(subscriptions.open).not.toHaveBeenCalled();
    } finally {
      jest.useRealTimers();
    }
  });
});

describe('DeviceSession token refresh', () => {
  it('arms no expiry for a socket that closed while its fresh token was being checked', async () => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'queueMicrotask', 'setImmediate'] });
    try {
      const socket = new FakeSocket();
      let verified!: (principal: Principal) => void;
      const deps = {
        metrics: new MetricsService(),
        subscribes: new SubscribeAllowance(settingsFrom(loadEnv({ LIMIT_DEVICE_SUBSCRIBES_PER_SECOND: '1000' }))),
        settings: settingsFrom(loadEnv({})),
        logger: pino({ level: 'silent' }),
        authenticator: { verifyToken: jest.fn(() => new Promise<Principal>((resolve) => (verified = resolve))) },
      } as unknown as DeviceSessionDeps;
      const device = { kind: 'device' as const, userId: 'ada', rights: new Map(), expiresAt: new Date(Date.now() + 60_000) };
      new DeviceSession(socket as unknown as WebSocket, device, deps);
      expect(jest.getTimerCount()).toBe(1);
      socket.receive({ type: 'auth', ref: 'a1', token: 'fresh' });
      await settle();
      socket.emit('close');
      expect(jest.getTimerCount()).toBe(0);
      verified({ ...device, expiresAt: new Date(Date.now() + 3_600_000) });
      await settle();
      // Nothing holds the closed session until the fresh token's expiry.
      expect(jest.getTimerCount()).toBe(0);
    } finally {
      jest.useRealTimers();
    }
  });
});
