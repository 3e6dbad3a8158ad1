import { createServer, connect, type Server, type Socket } from 'node:net';
import { freePort } from './free-port.js';

/**
 * A TCP proxy to a target port that can cut every connection through it, as a flaky mobile
 * network does. Only ever forwards to 127.0.0.1.
 */
export class TcpProxy {
  private readonly sockets = new Set<Socket>();
  private server?: Server;
  private chaos?: NodeJS.Timeout;
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
      upstream.pipe(client);
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
