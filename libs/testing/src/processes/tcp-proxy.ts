import { createServer, connect, type Server, type Socket } from 'node:net';
import { Transform } from 'node:stream';
import { freePort } from './free-port.js';

/**
 * A TCP proxy to a target port that can cut every connection through it, as a flaky mobile
 * network does. Only ever forwards to 127.0.0.1.
 */
export class TcpProxy {
  private readonly sockets = new Set<Socket>();
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
      client.pipe(upstream);
      const swallow = new Transform({
        transform: (chunk: Buffer, _encoding, done) => done(null, proxy.swallowing ? undefined : chunk),
      });
      upstream.pipe(swallow).pipe(client);
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
   * Stops reading from every open connection, both ways, without closing anything: a network
   * that drops every packet. What the two ends write fills their buffers and goes nowhere.
   * Connections made afterwards are forwarded as usual.
   */
  freeze(): void {
    for (const socket of this.sockets) {
      socket.unpipe();
      socket.pause();
    }
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
