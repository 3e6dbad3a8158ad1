import { DEFAULT_LIMITS } from '@seqline/protocol';
import { z } from 'zod';
import { DEFAULT_ALLOWED_ORIGINS, parseAllowedOrigins } from './allowed-origins.js';

const durationMs = z
  .string()
  .regex(/^\d+(ms|s|m|h|d)$/, 'a duration such as 500ms, 30s, 10m, 24h or 7d')
  .transform((text) => {
    const match = /^(\d+)(ms|s|m|h|d)$/.exec(text)!;
    const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
    return Number(match[1]) * unit;
  });

/** A duration that drives a timer, a lease or a window: 0 would make it fire at once, forever. */
const positiveDuration = durationMs.refine((ms) => ms > 0, 'a duration longer than 0');
/** Node runs a timer of more than 2^31-1 ms (about 24.8 days) after 1 ms instead: a setting that long would fire at once, forever. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** A duration a timer waits for: longer than 0 and at most about 24 days. */
const timerDuration = positiveDuration.refine((ms) => ms <= MAX_TIMER_MS, `a duration of at most 24d (${MAX_TIMER_MS}ms): a timer cannot wait longer`);

/** Digits only: `Number()` would take " " as 0 (a stray space in an env file) and `0x50` or `1e3` as numbers. */
const wholeNumber = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .regex(/^\s*-?\d+\s*$/, 'a whole number')
    .transform(Number)
    .pipe(z.number().int('a whole number').min(min, `at least ${min}`).max(max, `at most ${max}`));

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

const url = (protocols: string[]) =>
  z.string().refine((text) => {
    try {
      return protocols.includes(new URL(text).protocol);
    } catch {
      return false;
    }
  }, `a URL starting with ${protocols.join(' or ')}`);

const allowedOrigins = z.string().transform((text, context) => {
  try {
    return parseAllowedOrigins(text);
  } catch (error) {
    context.addIssue({ code: 'custom', message: (error as Error).message });
    return z.NEVER;
  }
});

/** Every setting the server reads, with its default. Documented in README.md#configuration. */
export const EnvSchema = z.object({
  PORT: wholeNumber(0, 65535).default(3000),
  HOST: z.string().default('0.0.0.0'),
  ALLOWED_ORIGINS: allowedOrigins.default(parseAllowedOrigins(DEFAULT_ALLOWED_ORIGINS)),
  DATABASE_URL: url(['postgres:', 'postgresql:']).default('postgresql://postgres@127.0.0.1:5432/seqline'),
  // The query bound and the idle-transaction timeout add 5 s to it: at most 24d keeps both within what a timer and Postgres take.
  DATABASE_STATEMENT_TIMEOUT: positiveDuration.refine((ms) => ms <= 24 * 86_400_000, 'a duration of at most 24d').default(30_000),
  NATS_URL: z.string().default('nats://127.0.0.1:4222'),
  NATS_USER: z.string().optional(),
  NATS_PASSWORD: z.string().optional(),
  SEQLINE_PREFIX: z.string().regex(/^[a-z0-9_-]{1,32}$/, 'lower-case letters, digits, _ or -').default('seqline'),
  SEQLINE_STREAM: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'letters, digits, _ or -').optional(),
  LOG_RETENTION: positiveDuration.default(7 * 86_400_000),
  LOG_MAX_BYTES: wholeNumber(-1).default(-1),
  LOG_DUPLICATE_WINDOW: positiveDuration.default(120_000),
  LOG_REPLICAS: wholeNumber(1, 5).default(1),
  PERSIST_FLUSH_INTERVAL: timerDuration.default(50),
  PERSIST_LEASE: timerDuration.default(5_000),
  PERSIST_LAG_DEGRADED: positiveDuration.default(30_000),
  AGENT_LEASE: positiveDuration.default(60_000),
  PROMPT_ACK_WAIT: positiveDuration.default(30_000),
  WRITE_PARTITION_LEASE: timerDuration.default(15_000),
  PERSIST_BATCH_EVENTS: wholeNumber(1).default(1000),
  WS_HEARTBEAT_INTERVAL: timerDuration.default(25_000),
  WS_MAX_BUFFERED_BYTES: wholeNumber(1).default(1024 * 1024),
  SSE_HEARTBEAT_INTERVAL: timerDuration.default(25_000),
  SSE_MAX_DURATION: timerDuration.default(30 * 60_000),
  SHUTDOWN_TIMEOUT: timerDuration.default(25_000),
  FEED_WINDOW_EVENTS: wholeNumber(1).default(1024),
  FEED_WINDOW_BYTES: wholeNumber(1024).default(1024 * 1024),
  FEED_LINGER: durationMs.default(30_000),
  RECENT_LOG_BYTES: wholeNumber(0).default(64 * 1024 * 1024),
  LIMIT_FRAME_BYTES: wholeNumber(1).default(DEFAULT_LIMITS.frameBytes),
  LIMIT_DELTA_CHARS: wholeNumber(1).default(DEFAULT_LIMITS.deltaChars),
  LIMIT_MESSAGE_CHARS: wholeNumber(1).default(DEFAULT_LIMITS.messageChars),
  LIMIT_SUBSCRIPTIONS_PER_SOCKET: wholeNumber(1).default(DEFAULT_LIMITS.subscriptionsPerSocket),
  AUTH_JWT_SECRET: z.string().min(32, 'a secret of at least 32 characters').optional(),
  // Keys fetched over plain HTTP could be swapped on the way, and with them anyone could sign an admin token: only from this host.
  AUTH_JWKS_URL: url(['https:', 'http:'])
    .refine((text) => new URL(text).protocol === 'https:' || LOOPBACK_HOSTS.has(new URL(text).hostname), 'an https: URL (http: only on this host: localhost, 127.0.0.1, [::1])')
    .optional(),
  AUTH_AUDIENCE: z.string().default('seqline'),
  AUTH_ISSUER: z.string().default('seqline'),
  ADMIN_API_KEYS: z
    .string()
    .regex(/^[0-9a-f]{64}(,[0-9a-f]{64})*$/, 'comma-separated SHA-256 hashes (hex) of the admin API keys')
    .optional(),
  LIMIT_CONNECTIONS_PER_USER: wholeNumber(1).default(20),
  LIMIT_DEVICE_POSTS_PER_SECOND: wholeNumber(1).default(5),
  LIMIT_DEVICE_SUBSCRIBES_PER_SECOND: wholeNumber(1).default(20),
  LIMIT_AGENT_COMMANDS_PER_SECOND: wholeNumber(1).default(1000),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
}).superRefine((env, context) => {
  // An event must outlive the longest persister lag health tolerates, or it can expire before Postgres gets it.
  if (env.LOG_RETENTION < 2 * env.PERSIST_LAG_DEGRADED) {
    context.addIssue({ code: 'custom', path: ['LOG_RETENTION'], message: `at least twice PERSIST_LAG_DEGRADED (${env.PERSIST_LAG_DEGRADED} ms), so events outlive a lagging persister` });
  }
  // One way to verify tokens: with both, one of them would silently be ignored.
  if (env.AUTH_JWT_SECRET && env.AUTH_JWKS_URL) {
    context.addIssue({ code: 'custom', path: ['AUTH_JWKS_URL'], message: 'either AUTH_JWT_SECRET or AUTH_JWKS_URL, not both: tokens are verified one way' });
  }
});
export type Env = z.infer<typeof EnvSchema>;

export class ConfigError extends Error {}

/** Variables whose value is a credential: an error names them, never shows them (it ends up in collected logs). */
const SECRET_NAME = /SECRET|PASSWORD|KEYS?$|TOKEN/;

/** A bad value as the error shows it: credentials hidden, and a URL without its user and password. */
function shown(name: string, value: string): string {
  if (SECRET_NAME.test(name)) return `(${value.length} characters, not shown)`;
  // Up to the last `@`: a password with `/`, `#` or `@` in it (not encoded: why such a URL is bad) is hidden whole.
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return JSON.stringify(value.replace(/^([a-z][a-z0-9+.-]*:\/\/).*@/is, '$1***@'));
  // Not even a scheme (`user:password@host/db`, a `//` mistyped): whatever comes before an `@` may be credentials.
  return JSON.stringify(value.replace(/^.*@/s, '***@'));
}

/** Validates the environment; the error names each bad variable and what it expects. */
export function loadEnv(source: Record<string, string | undefined> = process.env): Env {
  const cleaned = Object.fromEntries(Object.entries(source).filter(([, value]) => value !== undefined && value !== ''));
  const result = EnvSchema.safeParse(cleaned);
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => {
    const name = String(issue.path[0]);
    return `  ${issue.path.join('.')}=${shown(name, cleaned[name] ?? '')}: expected ${issue.message}`;
  });
  throw new ConfigError(`Invalid configuration; fix these environment variables:\n${lines.join('\n')}`);
}
