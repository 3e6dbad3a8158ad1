import type { Settings } from '../../libs/config/src/index.js';
import { BenchServer, now, round, rssBytes } from '../support/bench-server.js';
import { DeviceFleet } from '../support/fleet.js';
import { connectAgents, consumerCount, createConversations, sha1, sleep } from '../support/helpers.js';

const DEVICES = Number(process.env.BENCH_FANOUT_DEVICES ?? 1_000);
const TOKENS = 1_000;
const RATE = 50;

/** One conversation, 1,000 WebSocket devices, one answer of 1,000 tokens at 50 tokens/s. */
export async function fanout(settings: Settings, run: string) {
  const server = await BenchServer.start(settings);
  try {
    const id = `fan-${run}`;
    await createConversations(server.base, [id]);
    const rssBefore = await rssBytes(server.pid);
    const fleet = new DeviceFleet();
    const connected = await fleet.connect(server.base, Array.from({ length: DEVICES }, () => id));
    const [agent] = await connectAgents(settings, 1);
    const answer = agent!.startMessage(id, { messageId: 'answer' });
    await answer.ready;
    let text = '';
    const started = now();
    for (let t = 0; t < TOKENS; t++) {
      const wait = started + (t * 1000) / RATE - now();
      if (wait > 1) await sleep(wait);
      const token = ` t${t} @${now().toFixed(3)}`;
      text += token;
      answer.append(token);
    }
    await answer.complete();
    const done = await fleet.complete('answer', 120_000);
    // Until the last device had the answer complete, not until the fleet had also summed up its figures.
    const wallSeconds = ((Number.isNaN(done.completedAt) ? now() : done.completedAt) - started) / 1000;
    const rssAfter = await rssBytes(server.pid);
    const consumers = await consumerCount(settings);
    await fleet.close();
    await agent!.close();
    return {
      devices: DEVICES,
      tokens: TOKENS,
      subscribeSeconds: round(connected.ms / 1000),
      wallSeconds: round(wallSeconds),
      p50Ms: round(done.p50),
      p99Ms: round(done.p99),
      maxMs: round(done.max),
      serverMemoryGrowthMiB: round((rssAfter - rssBefore) / 2 ** 20, 1),
      jetStreamConsumers: consumers,
      devicesExact: done.hashes[sha1(text)] ?? 0,
      allCompleted: done.ok,
      chainViolations: done.violations,
    };
  } finally {
    await server.stop();
  }
}
