import { ConfigError, loadEnv } from './env.schema.js';
import { settingsFrom } from './settings.js';

describe('loadEnv', () => {
  it('fills defaults and derives the stream name from the prefix', () => {
    const settings = settingsFrom(loadEnv({ SEQLINE_PREFIX: 'acme-chat', LOG_RETENTION: '2h' }));
    expect(settings.http.port).toBe(3000);
    expect(settings.log).toMatchObject({ prefix: 'acme-chat', stream: 'ACME_CHAT_LOG', retentionMs: 7_200_000 });
  });

  it('names every bad variable and what it expects', () => {
    expect(() => loadEnv({ PORT: 'eighty', DATABASE_URL: 'mysql://x', LOG_RETENTION: 'forever' })).toThrow(ConfigError);
    try {
      loadEnv({ PORT: 'eighty', DATABASE_URL: 'mysql://x', LOG_RETENTION: 'forever' });
    } catch (error) {
      const text = (error as Error).message;
      expect(text).toContain('PORT="eighty": expected a whole number');
      expect(text).toContain('DATABASE_URL="mysql://x": expected a URL starting with postgres: or postgresql:');
      expect(text).toContain('LOG_RETENTION="forever": expected a duration such as 500ms, 30s, 10m, 24h or 7d');
    }
  });

  it('names a bad credential without showing it, and a bad URL without its password', () => {
    const error = (() => {
      try {
        loadEnv({ AUTH_JWT_SECRET: 's3cr3t-too-short', NATS_PASSWORD: '', DATABASE_URL: 'postgress://app:hunter2@db.internal:5432/seqline' });
      } catch (caught) {
        return caught as Error;
      }
      throw new Error('the configuration was accepted');
    })();
    expect(error.message).toContain('AUTH_JWT_SECRET=(16 characters, not shown): expected a secret of at least 32 characters');
    expect(error.message).toContain('DATABASE_URL="postgress://***@db.internal:5432/seqline": expected a URL starting with postgres: or postgresql:');
    expect(error.message).not.toMatch(/s3cr3t|hunter2/);
    for (const url of ['postgresql://app:pa/ss@db.internal/seqline', 'postgresql://app:p#ss@db.internal/seqline', 'postgresql://app:p@ss@db.internal/seqline']) {
      expect(() => loadEnv({ DATABASE_URL: url.replace('postgresql', 'mysql') })).toThrow(/DATABASE_URL="mysql:\/\/\*\*\*@db\.internal\/seqline"/);
    }
    // No scheme at all, or a mistyped one: what comes before the `@` is hidden all the same.
    for (const url of ['app:hunter2@db.internal:5432/seqline', 'postgres//app:hunter2@db.internal/seqline']) {
      expect(() => loadEnv({ DATABASE_URL: url })).toThrow(/DATABASE_URL="\*\*\*@db\.internal[^"]*"/);
      expect(() => loadEnv({ DATABASE_URL: url })).not.toThrow(/hunter2/);
    }
  });

  it('takes whole numbers as digits only: a stray space is not 0, nor 0x50 eighty', () => {
    for (const [name, value] of [['PORT', ' '], ['PORT', '0x50'], ['RECENT_LOG_BYTES', '1e3'], ['LIMIT_FRAME_BYTES', '65536.5']]) {
      expect(() => loadEnv({ [name]: value })).toThrow(`${name}=${JSON.stringify(value)}: expected a whole number`);
    }
    expect(loadEnv({ PORT: ' 8080 ', LOG_MAX_BYTES: '-1' })).toMatchObject({ PORT: 8080, LOG_MAX_BYTES: -1 });
  });

  it('refuses durations of 0 for what runs on a timer, and keeps 0 where it means "at once"', () => {
    expect(() => loadEnv({ WS_HEARTBEAT_INTERVAL: '0s' })).toThrow('WS_HEARTBEAT_INTERVAL="0s": expected a duration longer than 0');
    expect(() => loadEnv({ AGENT_LEASE: '0ms' })).toThrow('AGENT_LEASE="0ms": expected a duration longer than 0');
    expect(settingsFrom(loadEnv({ FEED_LINGER: '0s' })).feed.lingerMs).toBe(0);
  });

  it('refuses a timer longer than a timer can wait (Node would fire it after 1 ms), and keeps a long log retention', () => {
    expect(() => loadEnv({ SSE_MAX_DURATION: '30d' })).toThrow('SSE_MAX_DURATION="30d": expected a duration of at most 24d (2147483647ms): a timer cannot wait longer');
    expect(() => loadEnv({ WS_HEARTBEAT_INTERVAL: '25d' })).toThrow('WS_HEARTBEAT_INTERVAL="25d"');
    expect(settingsFrom(loadEnv({ SSE_MAX_DURATION: '24d' })).sse.maxDurationMs).toBe(24 * 86_400_000);
    // The statement timeout bounds queries and idle transactions 5 s past itself.
    expect(() => loadEnv({ DATABASE_STATEMENT_TIMEOUT: '2147483647ms' })).toThrow('DATABASE_STATEMENT_TIMEOUT="2147483647ms": expected a duration of at most 24d');
    expect(settingsFrom(loadEnv({ DATABASE_STATEMENT_TIMEOUT: '24d' })).database.statementTimeoutMs).toBe(24 * 86_400_000);
    expect(settingsFrom(loadEnv({ LOG_RETENTION: '90d' })).log.retentionMs).toBe(90 * 86_400_000);
  });

  it('takes a key set over plain HTTP only from this host', () => {
    expect(() => loadEnv({ AUTH_JWKS_URL: 'http://id.example.com/jwks.json' })).toThrow('AUTH_JWKS_URL="http://id.example.com/jwks.json": expected an https: URL (http: only on this host: localhost, 127.0.0.1, [::1])');
    expect(loadEnv({ AUTH_JWKS_URL: 'http://127.0.0.1:8080/jwks.json' }).AUTH_JWKS_URL).toBe('http://127.0.0.1:8080/jwks.json');
    expect(loadEnv({ AUTH_JWKS_URL: 'https://id.example.com/jwks.json' }).AUTH_JWKS_URL).toBe('https://id.example.com/jwks.json');
  });

  it('refuses both a JWT secret and a JWKS URL, naming the variable', () => {
    expect(() => loadEnv({ AUTH_JWT_SECRET: 'x'.repeat(32), AUTH_JWKS_URL: 'https://id.example.com/.well-known/jwks.json' })).toThrow(
      'AUTH_JWKS_URL="https://id.example.com/.well-known/jwks.json": expected either AUTH_JWT_SECRET or AUTH_JWKS_URL, not both: tokens are verified one way',
    );
  });
});
