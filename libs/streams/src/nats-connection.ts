import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { coalesceWrites } from './write-coalescing.js';

export interface NatsOptions {
  url: string;
  user?: string;
  password?: string;
  name: string;
}

export class NatsUnreachableError extends Error {}
/** Reached, but of no use: every log, lease and prompt is on JetStream. */
export class JetStreamDisabledError extends NatsUnreachableError {}

/**
 * A node that hangs without closing its connections (a paused process, a stuck host) is given up
 * once two pings, 5 s apart, go unanswered, and the client reconnects to another node: about 20 s
 * in all, where the client's defaults (2 minutes apart) would take several minutes.
 */
const HUNG_SERVER_PINGS = { pingInterval: 5_000, maxPingOut: 2 } as const;

/** Connects once (failing fast with a clear message), then keeps reconnecting forever after a drop. */
export async function connectNats(options: NatsOptions): Promise<NatsConnection> {
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: options.url.split(','),
      name: options.name,
      user: options.user,
      pass: options.password,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      // Also how long a reconnect waits on a node that accepts the connection but never answers.
      timeout: 3_000,
      ...HUNG_SERVER_PINGS,
      // Capturing a stack per request costs more than the whole publish on a hot path.
      noAsyncTraces: true,
    });
  } catch (error) {
    const message = (error as Error).message;
    const hint = /authori[sz]ation|authentication|permissions? violation/i.test(message)
      ? 'Check NATS_USER and NATS_PASSWORD (or the user and password in NATS_URL).'
      : 'Start nats-server with JetStream (-js) or set NATS_URL.';
    throw new NatsUnreachableError(`Cannot reach NATS at ${withoutCredentials(options.url)} (${message}). ${hint}`);
  }
  // Without this, the first JetStream request would wait out its retries and fail with the client's own words.
  if (nc.info?.jetstream !== true && !(await reachesJetStream(nc))) {
    await nc.close();
    throw new JetStreamDisabledError(`NATS at ${nc.getServer()} runs without JetStream. Start nats-server with -js (or a jetstream block in its configuration).`);
  }
  coalesceWrites(nc);
  closeStaleSockets(nc);
  return nc;
}

/** The URLs as an error may show them (it ends up in collected logs): without a user and password. */
export function withoutCredentials(urls: string): string {
  // Up to the last `@` of each: a password holding `@` or `/` is hidden whole.
  return urls
    .split(',')
    .map((url) => url.replace(/^([a-z][a-z0-9+.-]*:\/\/)?[^,]*@/i, (_, scheme: string | undefined) => `${scheme ?? ''}***@`))
    .join(',');
}

/**
 * Whether JetStream answers through a server that has none of its own: a leaf node can reach
 * its hub's JetStream, though its `INFO` says `jetstream: false`.
 */
async function reachesJetStream(nc: NatsConnection): Promise<boolean> {
  try {
    await jetstreamManager(nc, { timeout: 2_000 });
    return true;
  } catch {
    return false;
  }
}

/** How long a connection found stale may take to close before its socket is destroyed. */
const STALE_CLOSE_MS = 2_000;

/**
 * Makes sure a connection found stale (its pings unanswered) is closed, so the client reconnects.
 * The client closes it by first flushing what it queued to the socket, and on a network that
 * drops packets (a black hole) that flush never completes once the kernel's buffers are full,
 * which a busy connection fills within seconds: the connection would then hang, neither used nor
 * given up, until TCP itself gives up, many minutes later. Its socket is destroyed instead.
 */
function closeStaleSockets(nc: NatsConnection): void {
  const transport = (): { socket?: { destroy(): void } } | undefined => (nc as unknown as { protocol?: { transport?: { socket?: { destroy(): void } } } }).protocol?.transport;
  void (async () => {
    let timer: NodeJS.Timeout | undefined;
    for await (const status of nc.status()) {
      if (status.type === 'staleConnection') {
        clearTimeout(timer);
        const stale = transport();
        timer = setTimeout(() => {
          // Still the connection that was found stale: a reconnect meanwhile has one of its own.
          if (transport() === stale) stale?.socket?.destroy();
        }, STALE_CLOSE_MS);
        timer.unref();
      } else if (status.type === 'disconnect' || status.type === 'close') {
        clearTimeout(timer);
      }
    }
  })();
}
export type { NatsConnection };
