import { connect, type NatsConnection } from '@nats-io/transport-node';
import { coalesceWrites } from './write-coalescing.js';

export interface NatsOptions {
  url: string;
  user?: string;
  password?: string;
  name: string;
}

export class NatsUnreachableError extends Error {}

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
    throw new NatsUnreachableError(
      `Cannot reach NATS at ${options.url} (${(error as Error).message}). Start nats-server with JetStream (-js) or set NATS_URL.`,
    );
  }
  coalesceWrites(nc);
  return nc;
}
export type { NatsConnection };
