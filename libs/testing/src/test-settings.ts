import { randomBytes } from 'node:crypto';
import { loadEnv, settingsFrom, type Settings } from '@seqline/config';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';

/**
 * Settings for one isolated test run: its own database, stream and subject prefix on the
 * machine's real Postgres and NATS, so runs never collide.
 */
export function createTestSettings(overrides: Record<string, string> = {}): Settings {
  const id = randomBytes(4).toString('hex');
  const base = new URL(process.env.TEST_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres');
  base.pathname = `/seqline_test_${id}`;
  return settingsFrom(
    loadEnv({
      PORT: '0',
      HOST: '127.0.0.1',
      DATABASE_URL: base.toString(),
      NATS_URL: process.env.NATS_URL ?? 'nats://127.0.0.1:4222',
      SEQLINE_PREFIX: `t${id}`,
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'error',
      ...overrides,
    }),
  );
}

/** Deletes the run's stream and database. */
export async function dropTestResources(settings: Settings): Promise<void> {
  const nc = await connect({ servers: settings.nats.url, user: settings.nats.user, pass: settings.nats.password });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(settings.log.stream).catch(() => false);
    // The leadership lease lives in a key-value bucket of its own.
    await jsm.streams.delete(`KV_${settings.log.stream}_LEASES`).catch(() => false);
    await jsm.streams.delete(`KV_${settings.log.stream}_PARTITIONS`).catch(() => false);
  } finally {
    await nc.close();
  }
  const admin = new URL(settings.database.url);
  const name = admin.pathname.slice(1);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  } finally {
    await client.end();
  }
}
