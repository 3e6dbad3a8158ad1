import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { AnswerStream, SeqlineAgent } from '../../libs/agent/src/index.js';
import type { Settings } from '../../libs/config/src/index.js';
import { WsDevice } from '../../libs/testing/src/ws-device.js';
import { BenchServer, now, percentile, round } from '../support/bench-server.js';
import { connectAgents, createConversations, sleep } from '../support/helpers.js';

const RATE = Number(process.env.BENCH_LATENCY_RATE ?? 2_000);
const SECONDS = Number(process.env.BENCH_LATENCY_SECONDS ?? 10);
/**
 * The unmeasured round first, at the same rate on the same conversations, as in `scaleout`: a
 * freshly started server and agent take about a second of this load to optimise their hot paths,
 * and that second would otherwise set the p99. Its own p99 is reported apart (`coldP99Ms`).
 */
const WARM_UP_SECONDS = Number(process.env.BENCH_WARM_UP_SECONDS ?? 3);
const ANSWERS = 20;
/** The server's event-loop sampling interval (see MetricsService). */
const SERVER_LOOP_SAMPLING_MS = 100;

/** 20 answers sharing 2,000 tokens/s: time from a token's append to its arrival on the device. */
export async function latency(settings: Settings, run: string) {
  const server = await BenchServer.start(settings);
  try {
    const ids = Array.from({ length: ANSWERS }, (_, i) => `lat-${run}-${i}`);
    await createConversations(server.base, ids);
    let samples: number[] = [];
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
        let coldP99Ms: number | undefined;
    if (WARM_UP_SECONDS > 0) {
      await stream(agents, devices, ids, 'warm-up', WARM_UP_SECONDS);
      coldP99Ms = round(percentile(samples.sort((a, b) => a - b), 99));
      samples = [];
    }
    const loop = monitorEventLoopDelay({ resolution: 1 });
    // Reading the server's event-loop histogram resets it: the figure after covers the measured round only.
    await server.metric('nodejs_eventloop_lag_p99_seconds');
    loop.enable();
    const texts = await stream(agents, devices, ids, 'answer', SECONDS);
    loop.disable();
    const exactTexts = devices.filter((device, i) => device.text('answer') === texts[i]).length;
    const chainViolations = devices.reduce((sum, device) => sum + device.violations.length, 0);
    const serverLoopP99 = await server.metric('nodejs_eventloop_lag_p99_seconds');
    await Promise.all(devices.map((device) => device.close()));
    await Promise.all(agents.map((agent) => agent.close()));
    samples.sort((a, b) => a - b);
    return {
      tokensPerSecond: RATE,
      seconds: SECONDS,
      samples: samples.length,
      /** One sample per token appended: a token delivered twice, or not at all, shows here. */
      expectedSamples: Math.round(RATE / ANSWERS * SECONDS) * ANSWERS,
      answers: ANSWERS,
      /** Devices whose text is exactly what the agents appended. */
      exactTexts,
      chainViolations,
      p50Ms: round(percentile(samples, 50)),
      p90Ms: round(percentile(samples, 90)),
      p99Ms: round(percentile(samples, 99)),
      maxMs: round(samples.at(-1) ?? NaN),
      /** p99 of the warm-up round: the first seconds of a freshly started server. */
      coldP99Ms: coldP99Ms ?? NaN,
      /** Event-loop stalls of the benchmark process itself (agents and devices), which inflate the figures above. */
      clientEventLoopP99Ms: round(loop.percentile(99) / 1e6),
      // The server samples its event loop every 100 ms, and each sample counts that interval too.
      serverEventLoopP99Ms: round(serverLoopP99 * 1000 - SERVER_LOOP_SAMPLING_MS),
    };
  } finally {
    await server.stop();
  }
}

/** Every answer offers `RATE / ANSWERS` tokens/s for `seconds`, each token stamped with when it was appended; ends once every device has it complete. */
async function stream(agents: SeqlineAgent[], devices: WsDevice[], ids: string[], messageId: string, seconds: number): Promise<string[]> {
  const answers: AnswerStream[] = ids.map((id, i) => agents[i % agents.length]!.startMessage(id, { messageId }));
  await Promise.all(answers.map((answer) => answer.ready));
  const perAnswerRate = RATE / ANSWERS;
  const totalPerAnswer = Math.round(perAnswerRate * seconds);
  const texts = await Promise.all(
    answers.map(async (answer, i) => {
      const start = now() + (i * 1000) / RATE;
      let text = '';
      for (let t = 0; t < totalPerAnswer; t++) {
        const wait = start + (t * 1000) / perAnswerRate - now();
        if (wait > 0) await sleep(wait);
        const token = ` @${now().toFixed(3)}`;
        text += token;
        answer.append(token);
      }
      await answer.complete();
      return text;
    }),
  );
  await Promise.all(devices.map((device) => device.until(() => device.messages.get(messageId)?.status === 'complete', 60_000)));
  return texts;
}
