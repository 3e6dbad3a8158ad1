import { createHash } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import { SeqlineAgent } from '../../libs/agent/src/index.js';
import type { Settings } from '../../libs/config/src/index.js';
import { PERSISTER_CONSUMER } from '../../libs/streams/src/persister-lag.js';
import { createConversation } from '../../libs/testing/src/rest-client.js';

/** JetStream consumers on the run's stream right now. */
export async function consumerCount(settings: Settings): Promise<number> {
  const nc = await connect({ servers: settings.nats.url });
  try {
    const jsm = await jetstreamManager(nc);
    return (await jsm.consumers.list(settings.log.stream).next()).length;
  } finally {
    await nc.close();
  }
}

/**
 * JetStream API requests the account has served so far (every client, every instance). The read's
 * own request is taken off, and the manager is made without the account check that would add one.
 */
export async function jetStreamApiRequests(settings: Settings): Promise<number> {
  const nc = await connect({ servers: settings.nats.url });
  try {
    return (await (await jetstreamManager(nc, { checkAPI: false })).getAccountInfo()).api.total - 1;
  } finally {
    await nc.close();
  }
}

/** Creates conversations over REST, a few at a time. */
export async function createConversations(base: string, ids: string[], concurrency = 50): Promise<void> {
  for (let i = 0; i < ids.length; i += concurrency) await Promise.all(ids.slice(i, i + concurrency).map((id) => createConversation(base, id)));
}

export function connectAgents(settings: Settings, count: number): Promise<SeqlineAgent[]> {
  return Promise.all(
    Array.from({ length: count }, (_, i) =>
      SeqlineAgent.connect({ servers: settings.nats.url, agentId: `bench-${i}`, prefix: settings.log.prefix, stream: settings.log.stream, batchCommands: process.env.BENCH_BATCH_COMMANDS !== '0' }),
    ),
  );
}

export function sha1(text: string): string {
  return createHash('sha1').update(text).digest('hex');
}

export async function countRows(settings: Settings, where: string): Promise<number> {
  const client = new pg.Client({ connectionString: settings.database.url });
  await client.connect();
  try {
    return (await client.query(`SELECT count(*)::int AS n FROM messages WHERE ${where}`)).rows[0].n as number;
  } finally {
    await client.end();
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Waits until Postgres holds everything in the log, as it does long before a device returns: the
 * persister's consumer has every event delivered and acknowledged. Read from JetStream itself, not
 * from the instances' health, which reuses a reading for a second.
 */
export async function persisted(settings: Settings, timeoutMs = 30_000): Promise<void> {
  const nc = await connect({ servers: settings.nats.url });
  try {
    const jsm = await jetstreamManager(nc, { checkAPI: false });
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const info = await jsm.consumers.info(settings.log.stream, PERSISTER_CONSUMER).catch(() => null);
      if (info && info.num_pending === 0 && info.num_ack_pending === 0) return;
      if (Date.now() > deadline) throw new Error('Postgres did not catch up with the log');
      await sleep(100);
    }
  } finally {
    await nc.close();
  }
}
