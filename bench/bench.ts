// End-to-end benchmark: agents -> NATS -> server -> WebSocket devices, on this machine's real
// NATS and Postgres. The server runs as its own process, as in production.
// Prints the figures and writes them to bench/results.json.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { SeqlineAgent } from '../libs/agent/src/index.js';
import { createConversation } from '../libs/testing/src/rest-client.js';
import { createTestSettings, dropTestResources } from '../libs/testing/src/test-settings.js';
import { WsDevice } from '../libs/testing/src/ws-device.js';

const THROUGHPUT_ANSWERS = Number(process.env.BENCH_ANSWERS ?? 100);
const THROUGHPUT_TOKENS = Number(process.env.BENCH_TOKENS ?? 1_000);
/** Tokens per second each answer offers in the throughput run: a fast model. */
const THROUGHPUT_ANSWER_RATE = Number(process.env.BENCH_ANSWER_RATE ?? 500);
const LATENCY_RATE = Number(process.env.BENCH_LATENCY_RATE ?? 2_000);
const LATENCY_SECONDS = Number(process.env.BENCH_LATENCY_SECONDS ?? 10);
const LATENCY_ANSWERS = 20;
const AGENT_CONNECTIONS = 4;

const settings = createTestSettings({ LOG_LEVEL: 'warn' });
const port = 3900 + Math.floor(Math.random() * 90);
const base = `http://127.0.0.1:${port}`;

function startServer(): ChildProcess {
  return spawn(process.execPath, [...(process.env.BENCH_PROFILE ? ['--cpu-prof', '--cpu-prof-dir=/tmp/prof'] : []), 'dist/apps/server/src/main.js'], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', DATABASE_URL: settings.database.url, SEQLINE_PREFIX: settings.log.prefix, LOG_LEVEL: 'warn' },
  });
}

async function waitHealthy(): Promise<void> {
  for (let i = 0; i < 240; i++) {
    try {
      if ((await fetch(`${base}/health`)).ok) return;
    } catch {}
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error('server did not start');
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : 0;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

const round = (n: number, digits = 2): number => Number(n.toFixed(digits));

async function connectAgents(coalesceMs: number): Promise<SeqlineAgent[]> {
  return Promise.all(
    Array.from({ length: AGENT_CONNECTIONS }, (_, i) =>
      SeqlineAgent.connect({ servers: settings.nats.url, agentId: `bench-${i}`, prefix: settings.log.prefix, stream: settings.log.stream, coalesceMs }),
    ),
  );
}

async function throughput() {
  const ids = Array.from({ length: THROUGHPUT_ANSWERS }, (_, i) => `tp-${i}`);
  await Promise.all(ids.map((id) => createConversation(base, id)));
  const devices = ids.map((id) => new WsDevice(base, id));
  await Promise.all(devices.map((device) => device.connect()));
  const agents = await connectAgents(20);
  const tokens = Array.from({ length: THROUGHPUT_TOKENS }, (_, i) => ` tok${i}`);
  const expected = tokens.join('');
  const rowWritesBefore = await metric('seqline_persist_row_writes_total');

  const started = performance.now();
  await Promise.all(
    ids.map(async (id, i) => {
      const answer = agents[i % agents.length]!.startMessage(id, { messageId: 'answer' });
      const begin = performance.now();
      for (let t = 0; t < tokens.length; t++) {
        const wait = begin + (t * 1000) / THROUGHPUT_ANSWER_RATE - performance.now();
        if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
        answer.append(tokens[t]!);
      }
      await answer.complete();
    }),
  );
  await Promise.all(devices.map((device) => device.until(() => device.messages.get('answer')?.status === 'complete', 300_000)));
  const seconds = (performance.now() - started) / 1000;
  const exact = devices.filter((device) => device.text('answer') === expected && device.violations.length === 0).length;

  // Let the persister catch up, then count rows and writes.
  for (let i = 0; i < 200; i++) {
    const completeRows = await countRows("status = 'complete' AND conversation_id LIKE 'tp-%'");
    if (completeRows === THROUGHPUT_ANSWERS) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const rows = await countRows("conversation_id LIKE 'tp-%'");
  const rowWrites = (await metric('seqline_persist_row_writes_total')) - rowWritesBefore;
  await Promise.all(devices.map((device) => device.close()));
  await Promise.all(agents.map((agent) => agent.close()));
  const appendEvents = devices[0]!.events.filter((event) => event.event.type === 'message.appended').length;
  return {
    answers: THROUGHPUT_ANSWERS,
    tokensPerAnswer: THROUGHPUT_TOKENS,
    offeredTokensPerSecond: THROUGHPUT_ANSWERS * THROUGHPUT_ANSWER_RATE,
    totalTokens: THROUGHPUT_ANSWERS * THROUGHPUT_TOKENS,
    seconds: round(seconds),
    tokensPerSecond: Math.round((THROUGHPUT_ANSWERS * THROUGHPUT_TOKENS) / seconds),
    devicesWithExactText: exact,
    appendEventsPerAnswer: appendEvents,
    postgresRows: rows,
    postgresRowWritesPerMessage: round(rowWrites / THROUGHPUT_ANSWERS),
  };
}

async function latency() {
  const ids = Array.from({ length: LATENCY_ANSWERS }, (_, i) => `lat-${i}`);
  await Promise.all(ids.map((id) => createConversation(base, id)));
  const samples: number[] = [];
  const devices = ids.map((id) => {
    const device = new WsDevice(base, id);
    device.onEvent = (event) => {
      if (event.event.type !== 'message.appended') return;
      const now = performance.now();
      for (const match of event.event.delta.matchAll(/ @(\d+\.\d+)/g)) samples.push(now - Number(match[1]));
    };
    return device;
  });
  await Promise.all(devices.map((device) => device.connect()));
  const agents = await connectAgents(1);
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const perAnswerRate = LATENCY_RATE / LATENCY_ANSWERS;
  const totalPerAnswer = Math.round(perAnswerRate * LATENCY_SECONDS);
  const answers = ids.map((id, i) => agents[i % agents.length]!.startMessage(id, { messageId: 'answer' }));
  // Steady state: every answer has started before the clock runs.
  await Promise.all(answers.map((answer) => answer.ready));
  await Promise.all(
    answers.map(async (answer, i) => {
      const start = performance.now() + (i * 1000) / LATENCY_RATE;
      for (let t = 0; t < totalPerAnswer; t++) {
        const due = start + (t * 1000) / perAnswerRate;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        answer.append(` @${performance.now().toFixed(3)}`);
      }
      await answer.complete();
    }),
  );
  await Promise.all(devices.map((device) => device.until(() => device.messages.get('answer')?.status === 'complete', 60_000)));
  loop.disable();
  await Promise.all(devices.map((device) => device.close()));
  await Promise.all(agents.map((agent) => agent.close()));
  samples.sort((a, b) => a - b);
  return {
    tokensPerSecond: LATENCY_RATE,
    seconds: LATENCY_SECONDS,
    samples: samples.length,
    coalesceWindowMs: 1,
    p50Ms: round(percentile(samples, 50)),
    p90Ms: round(percentile(samples, 90)),
    p99Ms: round(percentile(samples, 99)),
    maxMs: round(samples.at(-1) ?? NaN),
    /** Event-loop stalls of the benchmark process itself (agents and devices), which inflate the figures above. */
    clientEventLoopP99Ms: round(loop.percentile(99) / 1e6),
    serverEventLoopP99Ms: round((await metric('nodejs_eventloop_lag_p99_seconds')) * 1000),
  };
}

async function countRows(where: string): Promise<number> {
  const pg = (await import('pg')).default;
  const client = new pg.Client({ connectionString: settings.database.url });
  await client.connect();
  try {
    const result = await client.query(`SELECT count(*)::int AS n FROM messages WHERE ${where}`);
    return result.rows[0].n as number;
  } finally {
    await client.end();
  }
}

const server = startServer();
try {
  await waitHealthy();
  console.log(`benchmark: server pid ${server.pid}, ${THROUGHPUT_ANSWERS} answers x ${THROUGHPUT_TOKENS} tokens, then ${LATENCY_RATE} tokens/s for ${LATENCY_SECONDS} s`);
  const tp = await throughput();
  console.log('throughput', tp);
  const lat = await latency();
  console.log('latency', lat);
  const results = {
    date: new Date().toISOString(),
    machine: { cpus: (await import('node:os')).cpus().length, node: process.version },
    throughput: tp,
    latency: lat,
    targets: {
      tokensPerSecond: { target: 20_000, met: tp.tokensPerSecond >= 20_000 },
      rowsPerAnswer: { target: 1, met: tp.postgresRows === tp.answers },
      p99Ms: { target: 25, met: lat.p99Ms <= 25 },
    },
  };
  await writeFile('bench/results.json', JSON.stringify(results, null, 2) + '\n');
  console.log('targets', results.targets);
  console.log('written to bench/results.json');
} finally {
  server.kill('SIGTERM');
  await new Promise((resolve) => server.once('exit', resolve));
  await dropTestResources(settings);
}
process.exit(0);
