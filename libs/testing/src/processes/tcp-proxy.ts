import { createServer, connect, type Server, type Socket } from 'node:net';
import { Transform } from 'node:stream';
import { freePort } from './free-port.js';

/**
 * A TCP proxy to a target port that can cut every connection through it, as a flaky mobile
 * network does. Only ever forwards to 127.0.0.1.
 */
export class TcpProxy {
  private readonly sockets = new Set<Socket>();
  private readonly gates = new Set<{ frozen: boolean; held: (() => void)[] }>();
  private freezingNew = false;
  private server?: Server;
  private chaos?: NodeJS.Timeout;
  /** While set, what the target sends is dropped: the connection stays up, its bytes go nowhere. */
  private swallowing = false;
  cuts = 0;

  private constructor(
    readonly port: number,
    private readonly targetPort: number,
  ) {}

  static async start(targetPort: number): Promise<TcpProxy> {
    const proxy = new TcpProxy(await freePort(), targetPort);
    proxy.server = createServer((client) => {
      const upstream = connect(proxy.targetPort, '127.0.0.1');
      for (const socket of [client, upstream]) {
        proxy.sockets.add(socket);
        socket.on('close', () => proxy.sockets.delete(socket));
        socket.on('error', () => socket.destroy());
      }
      client.pipe(proxy.gate()).pipe(upstream);
      const swallow = new Transform({
        transform: (chunk: Buffer, _encoding, done) => done(null, proxy.swallowing ? undefined : chunk),
      });
      upstream.pipe(proxy.gate()).pipe(swallow).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((done) => proxy.server!.listen(proxy.port, '127.0.0.1', done));
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Cuts every open connection. */
  cutAll(): void {
    if (this.sockets.size > 0) this.cuts++;
    for (const socket of this.sockets) socket.destroy();
  }

  /**
   * Drops (true) or forwards again (false) whatever the target sends, without closing anything:
   * the target believes it delivered, as when a mobile network loses data before a connection
   * is found dead. Cut the connections afterwards, or the client reads a broken byte stream.
   */
  swallowReplies(on: boolean): void {
    this.swallowing = on;
  }

  /**
   * Holds everything sent either way through every connection open now, without closing
   * anything: a network that drops every packet. What the two ends write fills their buffers
   * and goes nowhere. Connections made afterwards are forwarded as usual, unless
   * `newConnections` is set: then they are accepted and held too. `thaw()` lets what was
   * held through, as a network that comes back does (TCP sends it again).
   */
  freeze(options: { newConnections?: boolean } = {}): void {
    this.freezingNew = options.newConnections ?? false;
    for (const gate of this.gates) gate.frozen = true;
  }

  thaw(): void {
    this.freezingNew = false;
    for (const gate of this.gates) {
      gate.frozen = false;
      for (const release of gate.held.splice(0)) release();
    }
  }

  /** A pass-through that, once frozen, takes no more: the stream before it backs up to the socket. */
  private gate(): Transform {
    const state = { frozen: this.freezingNew, held: [] as (() => void)[] };
    this.gates.add(state);
    const gate = new Transform({
      transform: (chunk: Buffer, _encoding, done) => {
        if (!state.frozen) return done(null, chunk);
        state.held.push(() => done(null, chunk));
      },
    });
    gate.on('close', () => this.gates.delete(state));
    return gate;
  }

  /** Cuts all connections at random intervals between `minMs` and `maxMs` until `calm()`. */
  storm(minMs: number, maxMs: number): void {
    const next = (): void => {
      this.chaos = setTimeout(() => {
        this.cutAll();
        next();
      }, minMs + Math.random() * (maxMs - minMs));
    };
    next();
  }

  calm(): void {
    clearTimeout(this.chaos);
  }

  async close(): Promise<void> {
    this.calm();
    this.cutAll();
    await new Promise((done) => this.server?.close(done));
  }
}
