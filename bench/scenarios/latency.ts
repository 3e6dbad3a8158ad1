import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Settings } from '../../libs/config/src/index.js';
import { WsDevice } from '../../libs/testing/src/ws-device.js';
import { BenchServer, now, percentile, round } from '../support/bench-server.js';
import { connectAgents, createConversations, sleep } from '../support/helpers.js';

const RATE = Number(process.env.BENCH_LATENCY_RATE ?? 2_000);
const SECONDS = Number(process.env.BENCH_LATENCY_SECONDS ?? 10);
const ANSWERS = 20;
/** The server's event-loop sampling interval (see MetricsService). */
const SERVER_LOOP_SAMPLING_MS = 100;

/** 20 answers sharing 2,000 tokens/s: time from a token's append to its arrival on the device. */
export async function latency(settings: Settings, run: string) {
  const server = await BenchServer.start(settings);
  try {
    const ids = Array.from({ length: ANSWERS }, (_, i) => `lat-${run}-${i}`);
    await createConversations(server.base, ids);
    const samples: number[] = [];
    const devices = ids.map((id) => {
      const device = new WsDevice(server.base, id);
      device.onEvent = (event) => {
        if (event.event.type !== 'message.appended') return;
        const at = now();
        for (const match of event.event.delta.matchAll(/ @(\d+\.\d+)/g)) samples.push(at - Number(match[1]));
      };
      return device;
    });
    await Promise.all(devices.map((device) => device.connect()));
    const agents = await connectAgents(settings, 4);
    const loop = monitorEventLoopDelay({ resolution: 1 });
    loop.enable();
    const perAnswerRate = RATE / ANSWERS;
    const totalPerAnswer = Math.round(perAnswerRate * SECONDS);
    const answers = ids.map((id, i) => agents[i % agents.length]!.startMessage(id, { messageId: 'answer' }));
    await Promise.all(answers.map((answer) => answer.ready));
    await Promise.all(
      answers.map(async (answer, i) => {
        const start = now() + (i * 1000) / RATE;
        for (let t = 0; t < totalPerAnswer; t++) {
          const wait = start + (t * 1000) / perAnswerRate - now();
          if (wait > 0) await sleep(wait);
          answer.append(` @${now().toFixed(3)}`);
        }
        await answer.complete();
      }),
    );
    await Promise.all(devices.map((device) => device.until(() => device.messages.get('answer')?.status === 'complete', 60_000)));
    loop.disable();
    const serverLoopP99 = await server.metric('nodejs_eventloop_lag_p99_seconds');
    await Promise.all(devices.map((device) => device.close()));
    await Promise.all(agents.map((agent) => agent.close()));
    samples.sort((a, b) => a - b);
    return {
      tokensPerSecond: RATE,
      seconds: SECONDS,
      samples: samples.length,
      p50Ms: round(percentile(samples, 50)),
      p90Ms: round(percentile(samples, 90)),
      p99Ms: round(percentile(samples, 99)),
      maxMs: round(samples.at(-1) ?? NaN),
      /** Event-loop stalls of the benchmark process itself (agents and devices), which inflate the figures above. */
      clientEventLoopP99Ms: round(loop.percentile(99) / 1e6),
      // The server samples its event loop every 100 ms, and each sample counts that interval too.
      serverEventLoopP99Ms: round(serverLoopP99 * 1000 - SERVER_LOOP_SAMPLING_MS),
    };
  } finally {
    await server.stop();
  }
}
