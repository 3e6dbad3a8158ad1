import type { Settings } from '../../libs/config/src/index.js';
import { WsDevice } from '../../libs/testing/src/ws-device.js';
import { BenchServer, now, round } from '../support/bench-server.js';
import { connectAgents, countRows, createConversations, sleep } from '../support/helpers.js';

const ANSWERS = Number(process.env.BENCH_ANSWERS ?? 100);
const TOKENS = Number(process.env.BENCH_TOKENS ?? 1_000);
/** Tokens per second each answer offers: a fast model. */
const ANSWER_RATE = Number(process.env.BENCH_ANSWER_RATE ?? 500);

/** 100 answers of 1,000 tokens at once, one device each: delivered tokens per second and Postgres writes. */
export async function throughput(settings: Settings, run: string) {
  const server = await BenchServer.start(settings);
  try {
    const ids = Array.from({ length: ANSWERS }, (_, i) => `tp-${run}-${i}`);
    await createConversations(server.base, ids);
    const devices = ids.map((id) => new WsDevice(server.base, id));
    await Promise.all(devices.map((device) => device.connect()));
    const agents = await connectAgents(settings, 4);
    const tokens = Array.from({ length: TOKENS }, (_, i) => ` tok${i}`);
    const expected = tokens.join('');
    const rowWritesBefore = await server.metric('seqline_persist_row_writes_total');
    const started = now();
    await Promise.all(
      ids.map(async (id, i) => {
        const answer = agents[i % agents.length]!.startMessage(id, { messageId: 'answer' });
        const begin = now();
        for (let t = 0; t < tokens.length; t++) {
          const wait = begin + (t * 1000) / ANSWER_RATE - now();
          if (wait > 1) await sleep(wait);
          answer.append(tokens[t]!);
        }
        await answer.complete();
      }),
    );
    await Promise.all(devices.map((device) => device.until(() => device.messages.get('answer')?.status === 'complete', 300_000)));
    const seconds = (now() - started) / 1000;
    const exact = devices.filter((device) => device.text('answer') === expected && device.violations.length === 0).length;
    const like = `conversation_id LIKE 'tp-${run}-%'`;
    for (let i = 0; i < 200 && (await countRows(settings, `status = 'complete' AND ${like}`)) < ANSWERS; i++) await sleep(100);
    const rows = await countRows(settings, like);
    const rowWrites = (await server.metric('seqline_persist_row_writes_total')) - rowWritesBefore;
    await Promise.all(devices.map((device) => device.close()));
    await Promise.all(agents.map((agent) => agent.close()));
    return {
      answers: ANSWERS,
      tokensPerAnswer: TOKENS,
      offeredTokensPerSecond: ANSWERS * ANSWER_RATE,
      seconds: round(seconds),
      tokensPerSecond: Math.round((ANSWERS * TOKENS) / seconds),
      devicesWithExactText: exact,
      appendEventsPerAnswer: devices[0]!.events.filter((event) => event.event.type === 'message.appended').length,
      postgresRows: rows,
      postgresRowWritesPerMessage: round(rowWrites / ANSWERS),
    };
  } finally {
    await server.stop();
  }
}
