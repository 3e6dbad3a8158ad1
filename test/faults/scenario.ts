import pg from 'pg';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { appendFileSync } from 'node:fs';
import { SeqlineAgent } from '@seqline/agent';
import type { Settings } from '@seqline/config';
import { createConversation, http, ResilientDevice } from '@seqline/testing';

export interface ScenarioOptions {
  name: string;
  /** Where REST calls go. */
  adminUrl: string;
  /** Where devices connect; each device starts on a different one and rotates on reconnect. */
  deviceUrls: string[];
  /** The run's NATS URL, subject prefix and stream. */
  settings: Settings;
  conversations: number;
  devicesPerConversation: number;
  tokens: number;
  tokensPerSecond: number;
  /** Runs once the answers are a third of the way through. */
  fault: (devices: ResilientDevice[]) => Promise<void>;
  /** How long devices may take to converge after the agents finish. */
  settleMs?: number;
}

export interface ScenarioReport {
  case: string;
  conversations: number;
  devices: number;
  eventsSent: number;
  eventsDelivered: number;
  lost: number;
  duplicated: number;
  gaps: number;
  /** Anything else a device found out of order: a subscription resumed at another position than its cursor, an event its reducer could not apply. */
  otherViolations: number;
  devicesExact: number;
  reconnects: number;
  /** Subscriptions refused with a retryable code, and asked for again. */
  refusals: number;
  /** Subscriptions ended with `CURSOR_EXPIRED` and started again from a snapshot: events the log no longer held as a chain. */
  resets: number;
  seconds: number;
}

/**
 * Agents stream one answer per conversation while devices follow; `fault` strikes mid-stream.
 * Returns per-case figures and the expected texts, and leaves the devices stopped.
 */
export async function runScenario(options: ScenarioOptions): Promise<{ report: ScenarioReport; expected: Map<string, string>; devices: ResilientDevice[] }> {
  const started = Date.now();
  const ids = Array.from({ length: options.conversations }, (_, i) => `${options.name}-${i}`);
  for (const id of ids) await createConversation(options.adminUrl, id);
  const devices = ids.flatMap((id, c) => Array.from({ length: options.devicesPerConversation }, (_, d) => new ResilientDevice(options.deviceUrls, id, c * options.devicesPerConversation + d)));
  await Promise.all(devices.map((device) => device.start()));
  const agent = await SeqlineAgent.connect({
    servers: options.settings.nats.url,
    agentId: `${options.name}-agent`,
    prefix: options.settings.log.prefix,
    stream: options.settings.log.stream,
    requestTimeoutMs: 1_000,
  });

  const expected = new Map<string, string>();
  let progress = 0;
  const total = options.tokens * ids.length;
  let struck: Promise<void> | undefined;
  await Promise.all(
    ids.map(async (id) => {
      const answer = agent.startMessage(id, { messageId: 'answer' });
      let text = '';
      const begin = Date.now();
      for (let t = 0; t < options.tokens; t++) {
        const wait = begin + (t * 1000) / options.tokensPerSecond - Date.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        const token = ` ${id}:${t}`;
        text += token;
        answer.append(token);
        if (++progress === Math.floor(total / 3)) struck = options.fault(devices);
      }
      await answer.complete();
      expected.set(id, text);
    }),
  );
  await struck;
  await agent.close();

  const deadline = Date.now() + (options.settleMs ?? 60_000);
  await Promise.all(
    devices.map((device) =>
      device.until(() => device.messages.get('answer')?.status === 'complete', Math.max(1_000, deadline - Date.now())).catch(() => undefined),
    ),
  );
  await Promise.all(devices.map((device) => device.stop()));

  let eventsSent = 0;
  const eventsOf = new Map<string, number>();
  for (const id of ids) {
    let after: string | null = null;
    do {
      const page: { body: { items: unknown[]; next: string | null } } = await http(options.adminUrl, 'GET', `/v1/conversations/${id}/events?limit=500${after ? `&after=${after}` : ''}`);
      if (!Array.isArray(page.body.items)) throw new Error(`reading the events of ${id} failed: ${JSON.stringify(page.body)}\n${(await chainBreaks(options.settings, id)).join('\n')}`);
      eventsSent += page.body.items.length * options.devicesPerConversation;
      eventsOf.set(id, (eventsOf.get(id) ?? 0) + page.body.items.length);
      after = page.body.next;
    } while (after);
  }
  const delivered = devices.map((device) => new Set(device.events.map((event) => event.cursor)).size);
  const eventsDelivered = delivered.reduce((sum, count) => sum + count, 0);
  // Per device: one device's extra events must not hide another's missing ones.
  const lost = devices.reduce((sum, device, i) => sum + Math.max(0, (eventsOf.get(device.conversationId) ?? 0) - delivered[i]!), 0);
  const otherViolations = devices.flatMap((device) => device.violations.filter((violation) => !violation.startsWith('duplicate') && !violation.startsWith('gap')));
  const inexact = devices.filter((device) => device.text('answer') !== expected.get(device.conversationId));
  const report: ScenarioReport = {
    case: options.name,
    conversations: ids.length,
    devices: devices.length,
    eventsSent,
    eventsDelivered,
    lost,
    duplicated: devices.reduce((sum, device) => sum + device.duplicates, 0),
    gaps: devices.reduce((sum, device) => sum + device.gaps, 0),
    otherViolations: otherViolations.length,
    devicesExact: devices.length - inexact.length,
    reconnects: devices.reduce((sum, device) => sum + device.reconnects, 0),
    refusals: devices.reduce((sum, device) => sum + device.refusals, 0),
    resets: devices.reduce((sum, device) => sum + device.resets, 0),
    seconds: Math.round((Date.now() - started) / 100) / 10,
  };
  process.stdout.write(`fault case ${JSON.stringify(report)}\n`);
  if (otherViolations.length > 0) process.stdout.write(`fault case ${options.name}: ${JSON.stringify(otherViolations.slice(0, 10))}\n`);
  // A device that did not end exact: which instance it was on and where it stopped, so the
  // instance's log (kept with TEST_SERVER_LOGS=<folder>) can be read for that time.
  for (const device of inexact) {
    // An error a device does not retry (CURSOR_EXPIRED, say) ends its subscription: name it.
    const errors = device.frames.flatMap((frame) => (frame.type === 'error' ? [`${frame.code}: ${frame.message}`] : []));
    process.stdout.write(
      `fault case ${options.name}: device on ${device.url} of ${device.conversationId} stopped at ${device.cursor} after ${device.events.length} events, answer ${device.messages.get('answer')?.status ?? 'not seen'}; errors: ${JSON.stringify(errors)}\n`,
    );
  }
  // A device that did not end exact: say where its conversation's log breaks the chain, if it does.
  for (const id of new Set(inexact.map((device) => device.conversationId))) {
    process.stdout.write(`fault case ${options.name}: ${id} not exact; chain breaks in the log: ${JSON.stringify(await chainBreaks(options.settings, id))}\n`);
  }
  if (process.env.FAULT_REPORT) appendFileSync(process.env.FAULT_REPORT, JSON.stringify(report) + '\n');
  return { report, expected, devices };
}

/** Postgres ends with one row per answer holding exactly the agent's text. */
export async function expectRowsConverge(databaseUrl: string, expected: Map<string, string>, timeoutMs = 60_000): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const deadline = Date.now() + timeoutMs;
    let rows: { conversation_id: string; text: string; status: string }[] = [];
    for (;;) {
      rows = (await client.query('SELECT conversation_id, id, text, status FROM messages WHERE conversation_id = ANY($1)', [[...expected.keys()]])).rows;
      const exact = rows.length === expected.size && rows.every((row) => row.status === 'complete' && row.text === expected.get(row.conversation_id));
      if (exact || Date.now() > deadline) break;
      await new Promise((done) => setTimeout(done, 200));
    }
    expect(rows).toHaveLength(expected.size);
    for (const row of rows) expect({ id: row.conversation_id, status: row.status, exact: row.text === expected.get(row.conversation_id) }).toEqual({ id: row.conversation_id, status: 'complete', exact: true });
  } finally {
    await client.end();
  }
}

/** Where the conversation's log breaks its `prev` chain: each event whose `prev` is not the event before it. */
async function chainBreaks(settings: Settings, id: string): Promise<string[]> {
  const nc = await connect({ servers: settings.nats.url.split(',') });
  const breaks: string[] = [];
  try {
    const jsm = await jetstreamManager(nc);
    let seq = 0;
    let last = 0;
    let lastBody = '';
    for (;;) {
      const stored = await jsm.streams.getMessage(settings.log.stream, { seq: seq + 1, next_by_subj: `${settings.log.prefix}.log.${id}` } as unknown as { seq: number }).catch(() => null);
      if (!stored) break;
      const body = new TextDecoder().decode(stored.data);
      const prev = (JSON.parse(body) as { prev?: number }).prev;
      if (prev !== last) breaks.push(`seq ${stored.seq} prev ${prev} after ${last} msgId ${stored.header?.get('Nats-Msg-Id')} ${body.slice(0, 200)} | previous: ${lastBody.slice(0, 200)}`);
      last = stored.seq;
      lastBody = body;
      seq = stored.seq;
    }
  } finally {
    await nc.close();
  }
  return breaks;
}

/** Every device of the report ended exact, with no event lost, seen twice, out of its chain or not applied. */
export function expectNothingLost(report: ScenarioReport): void {
  expect({ lost: report.lost, duplicated: report.duplicated, gaps: report.gaps, otherViolations: report.otherViolations, exact: report.devicesExact }).toEqual({
    lost: 0,
    duplicated: 0,
    gaps: 0,
    otherViolations: 0,
    exact: report.devices,
  });
}
