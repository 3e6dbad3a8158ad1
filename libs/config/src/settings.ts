import type { AllowedOrigins } from './allowed-origins.js';
import type { Env } from './env.schema.js';

/** The server's settings, grouped by concern and derived once from the validated environment. */
export interface Settings {
  /** `allowedOrigins`: browser pages on other origins that may use REST, SSE and WebSocket (docs/security.md#browsers-on-other-origins). */
  http: { port: number; host: string; allowedOrigins: AllowedOrigins };
  database: { url: string; statementTimeoutMs: number };
  nats: { url: string; user?: string; password?: string };
  log: { prefix: string; stream: string; retentionMs: number; maxBytes: number; duplicateWindowMs: number; replicas: number };
  persist: { flushIntervalMs: number; batchEvents: number; leaseMs: number; lagDegradedSeconds: number };
  /** A streaming answer with no event for this long is ended `failed`. */
  agentLeaseMs: number;
  /** How long an agent may hold a prompt without an in-progress ack before it is redelivered. */
  promptAckWaitMs: number;
  /**
   * A crashed instance's write partitions lapse after this long (a stopping one hands them over at
   * once). Agents use the any-instance subject meanwhile, so it only costs conflicts, never stalls.
   */
  writePartitionLeaseMs: number;
  ws: { heartbeatMs: number; maxBufferedBytes: number };
  sse: { heartbeatMs: number; maxDurationMs: number };
  /** Each conversation with local subscribers keeps its recent events in memory, and lingers a while after the last one leaves. */
  feed: { windowEvents: number; windowBytes: number; lingerMs: number; recentLogBytes: number };
  limits: {
    frameBytes: number;
    deltaChars: number;
    messageChars: number;
    subscriptionsPerSocket: number;
    connectionsPerUser: number;
    devicePostsPerSecond: number;
    /** Subscribe and auth frames per socket: each costs log reads, a snapshot or a token check. */
    deviceSubscribesPerSecond: number;
    agentCommandsPerSecond: number;
  };
  /** Absent when no JWT secret, JWKS URL or admin API key is configured: the service then runs open. */
  auth?: { jwtSecret?: string; jwksUrl?: string; audience: string; issuer: string; adminKeyHashes: string[] };
  logLevel: Env['LOG_LEVEL'];
  /** A stop that takes longer (a dependency hung) ends the process anyway, before an orchestrator's kill. */
  shutdownTimeoutMs: number;
}

export const SETTINGS = Symbol('SETTINGS');

export function settingsFrom(env: Env): Settings {
  return {
    http: { port: env.PORT, host: env.HOST, allowedOrigins: env.ALLOWED_ORIGINS },
    database: { url: env.DATABASE_URL, statementTimeoutMs: env.DATABASE_STATEMENT_TIMEOUT },
    nats: { url: env.NATS_URL, user: env.NATS_USER, password: env.NATS_PASSWORD },
    log: {
      prefix: env.SEQLINE_PREFIX,
      stream: env.SEQLINE_STREAM ?? `${env.SEQLINE_PREFIX.toUpperCase().replace(/-/g, '_')}_LOG`,
      retentionMs: env.LOG_RETENTION,
      maxBytes: env.LOG_MAX_BYTES,
      duplicateWindowMs: env.LOG_DUPLICATE_WINDOW,
      replicas: env.LOG_REPLICAS,
    },
    persist: { flushIntervalMs: env.PERSIST_FLUSH_INTERVAL, batchEvents: env.PERSIST_BATCH_EVENTS, leaseMs: env.PERSIST_LEASE, lagDegradedSeconds: env.PERSIST_LAG_DEGRADED / 1000 },
    agentLeaseMs: env.AGENT_LEASE,
    promptAckWaitMs: env.PROMPT_ACK_WAIT,
    writePartitionLeaseMs: env.WRITE_PARTITION_LEASE,
    ws: { heartbeatMs: env.WS_HEARTBEAT_INTERVAL, maxBufferedBytes: env.WS_MAX_BUFFERED_BYTES },
    sse: { heartbeatMs: env.SSE_HEARTBEAT_INTERVAL, maxDurationMs: env.SSE_MAX_DURATION },
    feed: { windowEvents: env.FEED_WINDOW_EVENTS, windowBytes: env.FEED_WINDOW_BYTES, lingerMs: env.FEED_LINGER, recentLogBytes: env.RECENT_LOG_BYTES },
    limits: {
      frameBytes: env.LIMIT_FRAME_BYTES,
      deltaChars: env.LIMIT_DELTA_CHARS,
      messageChars: env.LIMIT_MESSAGE_CHARS,
      subscriptionsPerSocket: env.LIMIT_SUBSCRIPTIONS_PER_SOCKET,
      connectionsPerUser: env.LIMIT_CONNECTIONS_PER_USER,
      devicePostsPerSecond: env.LIMIT_DEVICE_POSTS_PER_SECOND,
      deviceSubscribesPerSecond: env.LIMIT_DEVICE_SUBSCRIBES_PER_SECOND,
      agentCommandsPerSecond: env.LIMIT_AGENT_COMMANDS_PER_SECOND,
    },
    auth:
      env.AUTH_JWT_SECRET || env.AUTH_JWKS_URL || env.ADMIN_API_KEYS
        ? {
            jwtSecret: env.AUTH_JWT_SECRET,
            jwksUrl: env.AUTH_JWKS_URL,
            audience: env.AUTH_AUDIENCE,
            issuer: env.AUTH_ISSUER,
            adminKeyHashes: env.ADMIN_API_KEYS?.split(',') ?? [],
          }
        : undefined,
    logLevel: env.LOG_LEVEL,
    shutdownTimeoutMs: env.SHUTDOWN_TIMEOUT,
  };
}
