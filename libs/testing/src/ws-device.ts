import { applyEvent, type ConversationEvent, type Message, type ServerFrame } from '@seqline/protocol';
import WebSocket from 'ws';

/**
 * A device speaking the raw WebSocket protocol, as a third-party client would: it keeps its
 * cursor, checks that each event follows the previous one, and renders messages with the
 * protocol's reducer. Anything out of order is recorded in `violations`.
 */
export class WsDevice {
  readonly frames: ServerFrame[] = [];
  readonly events: ConversationEvent[] = [];
  readonly violations: string[] = [];
  readonly messages = new Map<string, Message>();
  private readonly seen = new Set<string>();
  cursor: string | undefined;
  /** Called with every event as it arrives (benchmarks time deliveries here). */
  onEvent?: (event: ConversationEvent) => void;
  private socket?: WebSocket;
  private waiters: (() => void)[] = [];
  closeCode?: number;

  /** Called when the socket closes, with its close code. */
  onClose?: (code: number) => void;

  /** Called for each `error` frame. */
  onError?: (frame: Extract<ServerFrame, { type: 'error' }>) => void;

  /** Sent as `access_token` when set. */
  token?: string;

  constructor(
    public url: string,
    readonly conversationId: string,
  ) {}

  /** Connects and subscribes after the current cursor (a snapshot when there is none). */
  async connect(): Promise<void> {
    const socket = new WebSocket(this.url.replace(/^http/, 'ws') + '/v1/ws' + (this.token ? `?access_token=${encodeURIComponent(this.token)}` : ''));
    this.socket = socket;
    this.closeCode = undefined;
    socket.on('message', (data) => {
      if (socket === this.socket) this.receive(JSON.parse(String(data)) as ServerFrame);
    });
    socket.on('close', (code) => {
      if (socket !== this.socket) return;
      this.closeCode = code;
      this.onClose?.(code);
      this.notify();
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
      socket.once('close', () => reject(new Error('closed before opening')));
    });
    const from = this.frames.length;
    this.send({ type: 'subscribe', conversationId: this.conversationId, ...(this.cursor ? { after: this.cursor } : {}) });
    await this.until(() => this.frames.slice(from).some((frame) => frame.type === 'snapshot' || frame.type === 'subscribed' || frame.type === 'error'));
  }

  get open(): boolean {
    return this.socket?.readyState === WebSocket.OPEN;
  }

  send(frame: unknown): void {
    this.socket!.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** Sends `bytes` as a text frame as they are, UTF-8 or not, as a faulty client could. */
  sendTextBytes(bytes: Uint8Array): void {
    this.socket!.send(bytes, { binary: false });
  }

  /** Stops reading from the network, as a device too slow to keep up would; `resumeReading` undoes it. */
  pauseReading(): void {
    (this.socket as unknown as { _socket: { pause(): void } })._socket.pause();
  }

  resumeReading(): void {
    (this.socket as unknown as { _socket: { resume(): void } })._socket.resume();
  }

  /** Drops the connection abruptly, as a phone losing its network would. */
  drop(): void {
    this.socket?.terminate();
  }

  async close(): Promise<void> {
    if (!this.socket || this.socket.readyState === WebSocket.CLOSED) return;
    const closed = new Promise((resolve) => this.socket!.once('close', resolve));
    this.socket.close();
    await closed;
  }

  text(messageId: string): string | undefined {
    return this.messages.get(messageId)?.text;
  }

  /** Resolves once `predicate` holds, re-checked on every frame. */
  until(predicate: () => boolean, timeoutMs = 30_000): Promise<void> {
    if (predicate()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`device ${this.conversationId}: condition not met within ${timeoutMs} ms; last frames ${JSON.stringify(this.frames.slice(-3))}`)), timeoutMs);
      const check = (): void => {
        if (predicate()) {
          clearTimeout(timer);
          resolve();
        } else this.waiters.push(check);
      };
      this.waiters.push(check);
    });
  }

  private receive(frame: ServerFrame): void {
    this.frames.push(frame);
    switch (frame.type) {
      case 'snapshot':
        this.messages.clear();
        for (const message of frame.messages) this.messages.set(message.id, { ...message });
        this.cursor = frame.cursor;
        break;
      case 'subscribed':
        if (this.cursor !== undefined && frame.cursor !== this.cursor) this.violations.push(`subscribed at ${frame.cursor}, expected ${this.cursor}`);
        break;
      case 'event': {
        const { type: _type, ...event } = frame;
        if (this.seen.has(event.cursor)) this.violations.push(`duplicate ${event.cursor}`);
        else if (event.prev !== this.cursor) this.violations.push(`gap: ${event.cursor} follows ${event.prev}, device was at ${this.cursor}`);
        this.events.push(event);
        this.seen.add(event.cursor);
        if (!applyEvent(this.messages, event.event, event.cursor)) this.violations.push(`could not apply ${event.cursor}`);
        this.cursor = event.cursor;
        this.onEvent?.(event);
        break;
      }
      case 'error':
        this.onError?.(frame);
        break;
      default:
        break;
    }
    this.notify();
  }

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const check of waiters) check();
  }
}
