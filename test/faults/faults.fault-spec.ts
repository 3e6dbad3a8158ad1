import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import type { Settings } from '@seqline/config';
import {
  createConversation,
  createTestSettings,
  dropTestResources,
  eventually,
  http,
  NatsProcess,
  PostgresCluster,
  ResilientDevice,
  ServerProcess,
  TcpProxy,
} from '@seqline/testing';
import pg from 'pg';
import { demoAnswer } from '../../apps/demo-agent/src/answer-text.js';
import { expectNothingLost, expectRowsConverge, runScenario } from './scenario.js';

const FLAKY_SECONDS = Number(process.env.FAULT_FLAKY_SECONDS ?? 60);
const PG_DOWN_SECONDS = Number(process.env.FAULT_PG_DOWN_SECONDS ?? 20);
const FAST_FAILOVER = { PERSIST_LEASE: '2s', WRITE_PARTITION_LEASE: '2s' };

async function startServers(settings: Settings, count: number): Promise<ServerProcess[]> {
  const servers: ServerProcess[] = [];
  for (let i = 0; i < count; i++) servers.push(await ServerProcess.start(settings, FAST_FAILOVER));
  return servers;
}

describe('fault tolerance on real processes', () => {
  let settings: Settings;
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  beforeEach(() => {
    settings = createTestSettings();
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await Promise.resolve(cleanup()).catch(() => undefined);
  });

  it('kill -9 of one of three instances: its devices move to the others and every text ends exact', async () => {
    const servers = await startServers(settings, 3);
    cleanups.push(() => dropTestResources(settings), ...servers.map((server) => () => server.crash()));
    const { report, expected, devices } = await runScenario({
      name: 'kill9',
      adminUrl: servers[1]!.url,
      deviceUrls: servers.map((server) => server.url),
      settings,
      conversations: 10,
      devicesPerConversation: 5,
      tokens: 300,
      tokensPerSecond: 100,
      fault: () => servers[0]!.crash(),
    });
    expectNothingLost(report);
    expect(devices.filter((device) => device.closeCodes.includes(1006)).length).toBeGreaterThan(0);
    await expectRowsConverge(settings.database.url, expected);
  });

  it('SIGTERM on an instance: its devices get "going away" and continue elsewhere without loss', async () => {
    const servers = await startServers(settings, 2);
    cleanups.push(() => dropTestResources(settings), ...servers.map((server) => () => server.crash()));
    let exitCode: number | null = -1;
    const { report, expected, devices } = await runScenario({
      name: 'sigterm',
      adminUrl: servers[1]!.url,
      deviceUrls: servers.map((server) => server.url),
      settings,
      conversations: 4,
      devicesPerConversation: 4,
      tokens: 300,
      tokensPerSecond: 100,
      fault: async () => {
        exitCode = await servers[0]!.stop();
      },
    });
    expect(exitCode).toBe(0);
    expectNothingLost(report);
    const moved = devices.filter((device) => device.closeCodes.includes(1001));
    expect(moved.length).toBe(devices.length / 2);
    await expectRowsConverge(settings.database.url, expected);
  });

  it('NATS restarted mid-stream (keeping its store): agents retry, devices resume, nothing lost', async () => {
    const nats = await NatsProcess.start();
    cleanups.push(() => nats.destroy());
    settings = createTestSettings({ NATS_URL: nats.url });
    const servers = await startServers(settings, 2);
    cleanups.push(() => dropTestResources(settings), ...servers.map((server) => () => server.crash()));
    const { report, expected } = await runScenario({
      name: 'natsrestart',
      adminUrl: servers[0]!.url,
      deviceUrls: servers.map((server) => server.url),
      settings,
      conversations: 4,
      devicesPerConversation: 3,
      tokens: 400,
      tokensPerSecond: 100,
      fault: async () => {
        await nats.stop();
        // The outage reached the instances (they answer not ready while NATS is gone), not only the test.
        await eventually(async () => (await Promise.all(servers.map(async (server) => (await fetch(`${server.url}/health/ready`)).status))).every((status) => status === 503), 2_000, 'both instances saw NATS gone');
        await new Promise((done) => setTimeout(done, 1_500));
        await nats.startAgain();
      },
    });
    expectNothingLost(report);
    await expectRowsConverge(settings.database.url, expected);
  });

  it(`Postgres stopped for ${PG_DOWN_SECONDS} s, twice AGENT_LEASE: live delivery goes on, no live answer is failed, dropped devices resume from their cursors, then Postgres converges to the log`, async () => {
    const cluster = await PostgresCluster.start();
    cleanups.push(() => cluster.destroy());
    settings = createTestSettings({ DATABASE_URL: cluster.url('seqline_faults') });
    // A one-event window, so resumes read the log rather than the instance's memory.
    // The outage outlasts AGENT_LEASE: answers still streaming in the log must not be ended for their lagging rows.
    const server = await ServerProcess.start(settings, { ...FAST_FAILOVER, FEED_WINDOW_EVENTS: '1', AGENT_LEASE: `${Math.max(1, Math.floor(PG_DOWN_SECONDS / 2))}s` });
    cleanups.push(() => dropTestResources(settings), () => server.crash());
    let deliveredWhileDown = 0;
    let resumedWhileDown = 0;
    let refusedWhileDown = -1;
    let readyWhileDown: { status: number; postgres?: string } = { status: 0 };
    let restWhileDown: { status: number; retryAfter: string | null; body: unknown } | undefined;
    const { report, expected } = await runScenario({
      name: 'pgdown',
      adminUrl: server.url,
      deviceUrls: [server.url],
      settings,
      conversations: 3,
      devicesPerConversation: 2,
      tokens: Math.max(150, PG_DOWN_SECONDS * 30),
      tokensPerSecond: 20,
      fault: async (devices) => {
        cluster.stop();
        const before = devices.reduce((sum, device) => sum + device.events.length, 0);
        const downUntil = Date.now() + PG_DOWN_SECONDS * 1000;
        await new Promise((done) => setTimeout(done, 2_000));
        // Every device loses its connection while Postgres is down, and resumes from its cursor: that needs only the log.
        const framesBefore = devices.map((device) => device.frames.length);
        const refusalsBefore = devices.reduce((sum, device) => sum + device.refusals, 0);
        for (const device of devices) device.drop();
        await Promise.all(devices.map((device, i) => device.until(() => device.frames.slice(framesBefore[i]).some((frame) => frame.type === 'subscribed'), 15_000)));
        resumedWhileDown = devices.filter((device, i) => !device.frames.slice(framesBefore[i]).some((frame) => frame.type === 'error' || frame.type === 'snapshot')).length;
        refusedWhileDown = devices.reduce((sum, device) => sum + device.refusals, 0) - refusalsBefore;
        // Readiness names the dependency that is down; liveness stays up.
        const ready = await http<{ error?: { postgres?: { status: string } } }>(server.url, 'GET', '/health/ready');
        readyWhileDown = { status: ready.status, postgres: ready.body.error?.postgres?.status };
        expect((await http(server.url, 'GET', '/health/live')).status).toBe(200);
        // Admin reads need Postgres: a retryable refusal, not an internal error.
        const listWhileDown = await fetch(`${server.url}/v1/conversations`);
        restWhileDown = { status: listWhileDown.status, retryAfter: listWhileDown.headers.get('retry-after'), body: await listWhileDown.json() };
        await new Promise((done) => setTimeout(done, Math.max(0, downUntil - Date.now())));
        deliveredWhileDown = devices.reduce((sum, device) => sum + device.events.length, 0) - before;
        await cluster.startAgain();
      },
      settleMs: 90_000,
    });
    expect(deliveredWhileDown).toBeGreaterThan(0);
    expect(resumedWhileDown).toBe(report.devices);
    // Not one resume was refused and asked for again: they never waited for Postgres.
    expect(refusedWhileDown).toBe(0);
    expect(readyWhileDown).toEqual({ status: 503, postgres: 'down' });
    expect(restWhileDown).toEqual({ status: 503, retryAfter: '1', body: { code: 'UNAVAILABLE', message: 'Postgres is unavailable; retry shortly' } });
    expect((await http(server.url, 'GET', '/health/ready')).status).toBe(200);
    expectNothingLost(report);
    await expectRowsConverge(settings.database.url, expected, 90_000);
  });

  it(`a flaky network cutting device connections every 0.2-2 s for ${FLAKY_SECONDS} s: every final text exact`, async () => {
    const servers = await startServers(settings, 2);
    cleanups.push(() => dropTestResources(settings), ...servers.map((server) => () => server.crash()));
    const proxies = await Promise.all(servers.map((server) => TcpProxy.start(server.port)));
    cleanups.push(...proxies.map((proxy) => () => proxy.close()));
    for (const proxy of proxies) proxy.storm(200, 2_000);
    const { report, expected } = await runScenario({
      name: 'flaky',
      adminUrl: servers[0]!.url,
      deviceUrls: proxies.map((proxy) => proxy.url),
      settings,
      conversations: 5,
      devicesPerConversation: 4,
      tokens: FLAKY_SECONDS * 20,
      tokensPerSecond: 20,
      fault: async () => undefined,
      settleMs: 60_000,
    });
    for (const proxy of proxies) proxy.calm();
    const cuts = proxies.reduce((sum, proxy) => sum + proxy.cuts, 0);
    process.stdout.write(`flaky network: ${cuts} cuts\n`);
    expect(cuts).toBeGreaterThanOrEqual(FLAKY_SECONDS / 2);
    expect(report.reconnects).toBeGreaterThan(0);
    expectNothingLost(report);
    await expectRowsConverge(settings.database.url, expected);
  });

  it('an agent killed mid-answer: after the agent lease its message ends failed everywhere', async () => {
    const server = await ServerProcess.start(settings, { ...FAST_FAILOVER, AGENT_LEASE: '2s' });
    cleanups.push(() => dropTestResources(settings), () => server.crash());
    await createConversation(server.url, 'orphan');
    const device = new ResilientDevice([server.url], 'orphan');
    await device.connect();
    const agent = spawn(process.execPath, [resolve('test/faults/fixtures/endless-agent.mjs')], {
      env: { ...process.env, NATS_URL: settings.nats.url, SEQLINE_PREFIX: settings.log.prefix, CONVERSATION: 'orphan' },
      stdio: 'ignore',
    });
    cleanups.push(() => agent.kill('SIGKILL'));
    await device.until(() => (device.messages.get('endless')?.parts ?? 0) >= 5);
    agent.kill('SIGKILL');
    await device.until(() => device.messages.get('endless')?.status === 'failed', 15_000);
    const shown = device.text('endless')!;
    expect(device.messages.get('endless')?.error).toMatch(/^agent lease expired/);
    expect(device.violations).toEqual([]);
    const client = new pg.Client({ connectionString: settings.database.url });
    await client.connect();
    try {
      for (let i = 0; i < 100; i++) {
        const { rows } = await client.query("SELECT status, text FROM messages WHERE conversation_id = 'orphan' AND id = 'endless'");
        if (rows[0]?.status === 'failed') {
          expect(rows[0].text).toBe(shown);
          break;
        }
        await new Promise((done) => setTimeout(done, 100));
        if (i === 99) throw new Error('row never ended failed');
      }
      const { rows } = await client.query("SELECT count(*)::int AS n FROM messages WHERE status = 'streaming'");
      expect(rows[0].n).toBe(0);
    } finally {
      await client.end();
    }
    await device.stop();
  });
  it('an agent killed -9 mid-answer and another started: the prompt comes back and the answer ends exact, continued, with no spliced text', async () => {
    const server = await ServerProcess.start(settings, { ...FAST_FAILOVER, PROMPT_ACK_WAIT: '2s' });
    cleanups.push(() => dropTestResources(settings), () => server.crash());
    await createConversation(server.url, 'handover');
    const device = new ResilientDevice([server.url], 'handover');
    await device.connect();
    const startAgent = () => {
      const agent = spawn(process.execPath, [resolve('dist/apps/demo-agent/src/main.js')], {
        env: { ...process.env, NATS_URL: settings.nats.url, SEQLINE_PREFIX: settings.log.prefix, SEQLINE_STREAM: settings.log.stream, DEMO_TOKENS: '400', DEMO_TOKENS_PER_SECOND: '100', LOG_LEVEL: 'warn' },
        stdio: 'ignore',
      });
      cleanups.push(() => agent.kill('SIGKILL'));
      return agent;
    };
    const first = startAgent();
    const prompt = 'tell me about seams';
    await http(server.url, 'POST', '/v1/conversations/handover/messages', { messageId: 'q', text: prompt });
    await device.until(() => (device.messages.get('q-answer')?.parts ?? 0) >= 60, 20_000);
    first.kill('SIGKILL');
    const cut = device.text('q-answer')!;
    startAgent();
    await device.until(() => device.messages.get('q-answer')?.status === 'complete', 30_000);

    const expected = demoAnswer(prompt, 400);
    expect(device.text('q-answer')).toBe(expected);
    expect(expected.startsWith(cut)).toBe(true);
    expect(device.violations).toEqual([]);
    // One takeover, and every part after it continues the chain.
    expect(device.events.filter((event) => event.event.type === 'message.claimed').map((event) => (event.event as { epoch: number }).epoch)).toEqual([2]);
    const client = new pg.Client({ connectionString: settings.database.url });
    await client.connect();
    try {
      const answerRows = async () => (await client.query("SELECT id, status, text, producer_epoch FROM messages WHERE conversation_id = 'handover' AND author_role = 'agent'")).rows;
      for (let i = 0; i < 100 && (await answerRows())[0]?.status !== 'complete'; i++) await new Promise((done) => setTimeout(done, 200));
      expect(await answerRows()).toEqual([{ id: 'q-answer', status: 'complete', text: expected, producer_epoch: 2 }]);
    } finally {
      await client.end();
    }
    await device.stop();
  });
});
