import type { AnswerStream, SeqlineAgent } from '../../libs/agent/src/index.js';
import type { Settings } from '../../libs/config/src/index.js';
import { WRITE_PARTITIONS } from '../../libs/protocol/src/index.js';
import { BenchServer, now, round } from '../support/bench-server.js';
import { CpuMeter, sharedServicePids } from '../support/cpu-meter.js';
import { DeviceFleet } from '../support/fleet.js';
import { connectAgents, createConversations, jetStreamApiRequests, persisted, sha1, sleep } from '../support/helpers.js';

const ANSWERS = Number(process.env.BENCH_SCALEOUT_ANSWERS ?? 100);
const TOKENS = Number(process.env.BENCH_SCALEOUT_TOKENS ?? 1_000);
/** Measured rounds of an unpaced run, each 100 answers × 1,000 tokens on the same conversations. */
const UNPACED_ROUNDS = Number(process.env.BENCH_UNPACED_ROUNDS ?? 5);
/**
 * How long a paced warm-up round streams. Fresh processes take a few seconds of this load to
 * reach their steady capacity (V8 optimising the hot paths, sizing its young generation): in
 * the first second they carry about half the events per second they carry from the third on.
 */
const PACED_WARM_UP_SECONDS = Number(process.env.BENCH_WARM_UP_SECONDS ?? 3);

export interface ScaleOutOptions {
  instances: number;
  /** Tokens per second each answer offers; `unpaced`: as fast as the agent can append. */
  rate: number | 'unpaced';
  /** Every device drops its connection once, mid-answer, and resumes from its cursor. */
  drop: boolean;
  /**
   * One unmeasured round first, so the figures are those of a service that has been running.
   * Unpaced: the same number of answers on conversations of their own (a round lasts well under
   * a second, so without it the figure is mostly how fast fresh processes compile their hot
   * paths). Paced: an answer of `PACED_WARM_UP_SECONDS` at the same rate on the measured
   * conversations, with their devices watching, and no drop.
   */
  warmUp?: boolean;
  /** Answers streamed at once; 100 unless `BENCH_SCALEOUT_ANSWERS` says otherwise. */
  answers?: number;
}

/**
 * 100 answers of 1,000 tokens through the agent SDK (default settings), one device per answer
 * in a process of its own, connected to the last instance. Latency is token appended → token
 * received, including the drop.
 */
export async function streamAnswers(settings: Settings, run: string, options: ScaleOutOptions) {
  const servers: BenchServer[] = [];
  let agents: SeqlineAgent[] = [];
  let fleet: DeviceFleet | undefined;
  const count = options.answers ?? ANSWERS;
  try {
    for (let i = 0; i < options.instances; i++) servers.push(await BenchServer.start(settings));
    await waitForPartitions(servers);
    const reader = servers.at(-1)!;
    agents = await connectAgents(settings, 4);
    if (options.warmUp && options.rate === 'unpaced') {
      await warmUp(agents, reader.base, `so-${run}-${options.instances}-warm`, count);
      // Measured only once Postgres holds the warm-up round, so its writes do not compete.
      await persisted(settings);
    }
    const ids = Array.from({ length: count }, (_, i) => `so-${run}-${options.instances}-${i}`);
    await createConversations(reader.base, ids);
    fleet = new DeviceFleet();
    await fleet.connect(reader.base, ids);
    if (options.warmUp && options.rate !== 'unpaced' && PACED_WARM_UP_SECONDS > 0) {
      const answers = ids.map((id, i) => agents[i % agents.length]!.startMessage(id, { messageId: 'warm-up' }));
      await Promise.all(answers.map((answer) => answer.ready));
      await offer(answers, Math.round(PACED_WARM_UP_SECONDS * options.rate), options.rate);
      await fleet.complete('warm-up', 120_000);
      await persisted(settings);
      await fleet.forget();
    }
    const sum = async (metric: string): Promise<number> => (await Promise.all(servers.map((server) => server.metricSum(metric)))).reduce((a, b) => a + b, 0);
    const eventsBefore = await sum('seqline_events_written_total');
    const rowWritesBefore = await sum('seqline_persist_row_writes_total');
    const conflictsBefore = await sum('seqline_write_conflicts_total');
    // After the scrapes before the run, and read again before those after it: a scrape reads the persister's lag, a JetStream request of the harness's own.
    const apiBefore = await jetStreamApiRequests(settings);

    // An unpaced round lasts well under a second: several, back to back, make a figure that does not hang on one scheduling hiccup.
    const rounds = options.rate === 'unpaced' ? UNPACED_ROUNDS : 1;
    let seconds = 0;
    let exact = new Set(ids);
    let done: Awaited<ReturnType<DeviceFleet['complete']>> | undefined;
    let allCompleted = true;
    let chainViolations = 0;
    /** The waits for Postgres between rounds: their JetStream requests are the harness's. */
    let apiBetweenRounds = 0;
    let cpu: CpuMeter | undefined;
    let cpuUsed: Awaited<ReturnType<CpuMeter['read']>> | undefined;
    for (let round = 0; round < rounds; round++) {
      const messageId = round === 0 ? 'answer' : `answer-${round}`;
      const answers = ids.map((id, i) => agents[i % agents.length]!.startMessage(id, { messageId }));
      await Promise.all(answers.map((answer) => answer.ready));
      if (options.drop && options.rate !== 'unpaced') await fleet.drop(((TOKENS / options.rate) * 1000) / 2, 5);
      const expected: Record<string, string> = {};
      if (round === 0) cpu = await CpuMeter.start({ instances: servers.map((server) => server.pid), devices: [fleet.pid], ...sharedServicePids(settings.nats.url) });
      const started = now();
      const texts = await offer(answers, TOKENS, options.rate, started);
      ids.forEach((id, i) => (expected[id] = sha1(texts[i]!)));
      done = await fleet.complete(messageId, 300_000);
      allCompleted &&= done.ok;
      chainViolations += done.violations;
      // Until the last device had the answer complete, not until the fleet had also summed up its figures.
      seconds += ((Number.isNaN(done.completedAt) ? now() : done.completedAt) - started) / 1000;
      // The first round's streaming only: later rounds of an unpaced run include the waits for Postgres.
      cpuUsed ??= await cpu!.read();
      exact = new Set([...exact].filter((id) => done!.texts[id] === expected[id]));
      // The next round starts once Postgres holds this one, as the first starts after the warm-up.
      if (round + 1 < rounds) {
        const before = await jetStreamApiRequests(settings);
        await persisted(settings);
        apiBetweenRounds += (await jetStreamApiRequests(settings)) - before;
      }
    }
    const apiRequests = (await jetStreamApiRequests(settings)) - apiBefore - apiBetweenRounds;
    const events = (await sum('seqline_events_written_total')) - eventsBefore;
    // Every answer's start and end are events too.
    const appendEventsPerAnswer = (events - 2 * rounds * count) / (rounds * count);
    const conflicts = (await sum('seqline_write_conflicts_total')) - conflictsBefore;
    await persisted(settings);
    const rowWrites = (await sum('seqline_persist_row_writes_total')) - rowWritesBefore;
    return {
      instances: options.instances,
      ...(options.rate === 'unpaced' ? {} : { offeredTokensPerSecond: count * options.rate }),
      tokensPerSecond: Math.round((rounds * count * TOKENS) / seconds),
      p50Ms: round(done!.p50),
      p99Ms: round(done!.p99),
      newestTokenP50Ms: round(done!.newestTokenP50),
      newestTokenP99Ms: round(done!.newestTokenP99),
      ...(options.drop ? { drops: done!.resubscribes, resubscribeP50Ms: round(done!.resubscribeP50), resubscribeP99Ms: round(done!.resubscribeP99) } : {}),
      /** Answers exact in every round. */
      exactTexts: exact.size,
      answers: count,
      /** Every device had every answer complete, in every round. */
      allCompleted,
      chainViolations,
      appendEventsPerAnswer: round(appendEventsPerAnswer),
      jetStreamApiRequestsPerEvent: round(apiRequests / events, 3),
      writeConflicts: conflicts,
      postgresRowWritesPerAnswer: round(rowWrites / (rounds * count)),
      /** Appends each answer had acknowledged per second: with one in flight per answer, one over the mean round trip. */
      appendsPerAnswerPerSecond: round(appendEventsPerAnswer / (seconds / rounds), 0),
      machineBusyPercent: cpuUsed!.machineBusyPercent,
      ...Object.fromEntries(Object.entries(cpuUsed!.byRole).map(([role, percent]) => [`cpu${role[0]!.toUpperCase()}${role.slice(1)}Percent`, percent])),
    };
  } finally {
    await fleet?.close();
    await Promise.all(agents.map((agent) => agent.close()));
    await Promise.all(servers.map((server) => server.stop()));
  }
}

/**
 * Streams `tokens` tokens into each answer, each token stamped with the moment it is offered (the
 * devices measure latency from it), at `rate` tokens per second or as fast as the agent takes
 * them; completes the answers and returns their texts.
 */
async function offer(answers: AnswerStream[], tokens: number, rate: number | 'unpaced', started = now()): Promise<string[]> {
  return Promise.all(
    answers.map(async (answer) => {
      let text = '';
      for (let t = 0; t < tokens; t++) {
        if (rate === 'unpaced') {
          if (t % 20 === 0) await new Promise((resolve) => setImmediate(resolve));
        } else {
          const wait = started + (t * 1000) / rate - now();
          if (wait > 1) await sleep(wait);
        }
        const token = ` @${now().toFixed(3)}`;
        text += token;
        answer.append(token);
      }
      await answer.complete();
      return text;
    }),
  );
}

/** The same number of answers, unpaced and unmeasured, on conversations of their own. */
async function warmUp(agents: SeqlineAgent[], base: string, prefix: string, count: number): Promise<void> {
  const ids = Array.from({ length: count }, (_, i) => `${prefix}-${i}`);
  await createConversations(base, ids);
  await offer(ids.map((id, i) => agents[i % agents.length]!.startMessage(id, { messageId: 'answer' })), TOKENS, 'unpaced');
}

/** Unpaced, on one instance and then on two (each after a warm-up round): what the second instance costs. */
export async function unpaced(settings: Settings, run: string) {
  const one = await streamAnswers(settings, `${run}a`, { instances: 1, rate: 'unpaced', drop: false, warmUp: true });
  const two = await streamAnswers(settings, `${run}b`, { instances: 2, rate: 'unpaced', drop: false, warmUp: true });
  return {
    tokensPerSecondOneInstance: one.tokensPerSecond,
    tokensPerSecondTwoInstances: two.tokensPerSecond,
    twoOverOnePercent: Math.round((100 * two.tokensPerSecond) / one.tokensPerSecond),
    exactTexts: one.exactTexts + two.exactTexts,
    answers: one.answers + two.answers,
    allCompleted: one.allCompleted && two.allCompleted,
    chainViolations: one.chainViolations + two.chainViolations,
    appendEventsPerAnswerTwoInstances: two.appendEventsPerAnswer,
    jetStreamApiRequestsPerEventTwoInstances: two.jetStreamApiRequestsPerEvent,
  };
}

/** Until the instances share every write partition evenly. */
async function waitForPartitions(servers: BenchServer[]): Promise<void> {
  const share = Math.ceil(WRITE_PARTITIONS / servers.length);
  for (let i = 0; i < 200; i++) {
    const owned = await Promise.all(servers.map((server) => server.metric('seqline_write_partitions_owned')));
    if (owned.reduce((a, b) => a + b, 0) === WRITE_PARTITIONS && owned.every((n) => n === share)) return;
    await sleep(100);
  }
  throw new Error('write partitions were not shared out');
}
