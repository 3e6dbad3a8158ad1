// `npm run bench`: every scenario against real server processes on this machine's NATS and
// Postgres, each run on a fresh server process. Prints the median of the runs with their range
// and writes every figure to bench/results.json.
import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { createTestSettings, dropTestResources } from '../libs/testing/src/test-settings.js';
import { fanout } from './scenarios/fanout.js';
import { idle } from './scenarios/idle.js';
import { latency } from './scenarios/latency.js';
import { resume } from './scenarios/resume.js';
import { streamAnswers, unpaced } from './scenarios/scaleout.js';
import { throughput } from './scenarios/throughput.js';
import { onCluster } from './support/on-cluster.js';

type Figures = Record<string, number | boolean>;
type Scenario = { name: string; run: (settings: ReturnType<typeof createTestSettings>, run: string) => Promise<Figures>; targets: Target[] };
/** A figure's target: `max` means at most, `min` at least, `equals` exactly (another figure's name or a number). */
type Target = { figure: string } & ({ max: number } | { min: number } | { equals: number | string } | { is: boolean });

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
/** What every streaming scenario must hold in every run: each device has each answer complete and exact, and no event out of its chain. */
const EXACT_STREAMS: Target[] = [
  { figure: 'exactTexts', equals: 'answers' },
  { figure: 'allCompleted', is: true },
  { figure: 'chainViolations', equals: 0 },
];
const ONLY = process.env.BENCH_ONLY?.split(',');

const scenarios: Scenario[] = [
  {
    name: 'throughput',
    run: throughput,
    targets: [{ figure: 'tokensPerSecond', min: 20_000 }, { figure: 'devicesWithExactText', equals: 'answers' }, { figure: 'postgresRows', equals: 'answers' }],
  },
  {
    name: 'latency',
    run: latency,
    targets: [
      { figure: 'p99Ms', max: 25 },
      { figure: 'samples', equals: 'expectedSamples' },
      { figure: 'exactTexts', equals: 'answers' },
      { figure: 'chainViolations', equals: 0 },
    ],
  },
  // Runs on a three-node cluster with every stream on three replicas (R3), next to the single node's (`unpacedR3` follows `unpaced`).
  {
    name: 'throughputR3',
    run: onCluster(throughput),
    targets: [{ figure: 'devicesWithExactText', equals: 'answers' }, { figure: 'postgresRows', equals: 'answers' }],
  },
  {
    name: 'latencyR3',
    run: onCluster(latency),
    targets: [
      { figure: 'samples', equals: 'expectedSamples' },
      { figure: 'exactTexts', equals: 'answers' },
      { figure: 'chainViolations', equals: 0 },
    ],
  },
  {
    name: 'fanout',
    run: fanout,
    targets: [
      { figure: 'wallSeconds', max: 21 },
      { figure: 'p99Ms', max: 100 },
      { figure: 'serverMemoryGrowthMiB', max: 60 },
      { figure: 'devicesExact', equals: 'devices' },
      { figure: 'allCompleted', is: true },
      { figure: 'chainViolations', equals: 0 },
    ],
  },
  {
    name: 'idle5000',
    run: (settings, run) => idle(settings, run, 5_000),
    targets: [
      { figure: 'allSubscribed', is: true },
      { figure: 'subscribeSeconds', max: 5 },
      { figure: 'serverMemoryPerConnectionKiB', max: 20 },
      { figure: 'jetStreamConsumers', max: 10 },
      { figure: 'idleCpuTotalPercent', max: 2 },
    ],
  },
  {
    name: 'scaleout',
    run: (settings, run) => streamAnswers(settings, run, { instances: 2, rate: 200, drop: true, warmUp: true }),
    targets: [
      { figure: 'tokensPerSecond', min: 19_500 },
      { figure: 'p50Ms', max: 5 },
      { figure: 'p99Ms', max: 50 },
      { figure: 'resubscribeP50Ms', max: 25 },
      ...EXACT_STREAMS,
    ],
  },
  // The same scenario with fewer answers at once: how latency grows with load on this machine.
  {
    name: 'scaleout1',
    run: (settings, run) => streamAnswers(settings, run, { instances: 2, rate: 200, drop: true, answers: 1, warmUp: true }),
    targets: EXACT_STREAMS,
  },
  {
    name: 'scaleout10',
    run: (settings, run) => streamAnswers(settings, run, { instances: 2, rate: 200, drop: true, answers: 10, warmUp: true }),
    targets: EXACT_STREAMS,
  },
  {
    name: 'slowmodel',
    run: (settings, run) => streamAnswers(settings, run, { instances: 2, rate: 50, drop: false, warmUp: true }),
    targets: [{ figure: 'p50Ms', max: 20 }, ...EXACT_STREAMS],
  },
  {
    name: 'unpaced',
    run: unpaced,
    targets: [
      { figure: 'tokensPerSecondTwoInstances', min: 40_000 },
      { figure: 'twoOverOnePercent', min: 80 },
      ...EXACT_STREAMS,
    ],
  },
  { name: 'unpacedR3', run: onCluster(unpaced), targets: EXACT_STREAMS },
  { name: 'resume', run: resume, targets: [{ figure: 'exact', is: true }, { figure: 'allReceivedMs', max: 60 }] },
  { name: 'idle10000', run: (settings, run) => idle(settings, run, 10_000), targets: [{ figure: 'allSubscribed', is: true }] },
];

/** NaN when any run has no figure (a percentile of no samples, say): a median of the others would hide it. */
function median(values: number[]): number {
  if (values.some((value) => !Number.isFinite(value))) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function summarise(runs: Figures[]): Record<string, { median: number; min: number; max: number } | boolean> {
  const summary: Record<string, { median: number; min: number; max: number } | boolean> = {};
  for (const key of Object.keys(runs[0]!)) {
    const values = runs.map((run) => run[key]!);
    if (typeof values[0] === 'boolean') summary[key] = values.every(Boolean);
    else {
      const numbers = values as number[];
      const middle = median(numbers);
      // Two decimals, but small ratios keep three significant digits.
      summary[key] = { median: Math.abs(middle) >= 1 || middle === 0 ? Number(middle.toFixed(2)) : Number(middle.toPrecision(3)), min: Math.min(...numbers), max: Math.max(...numbers) };
    }
  }
  return summary;
}

/**
 * Performance targets (`max`, `min`) are judged on the median of the runs; correctness targets
 * (`is`, `equals`: every text exact, no chain broken) on every run, so one bad run fails them.
 */
function judge(target: Target, summary: ReturnType<typeof summarise>, runs: Figures[]): { target: string; met: boolean } {
  const value = summary[target.figure];
  const figure = typeof value === 'object' ? value.median : value;
  if ('is' in target) return { target: `${target.figure} is ${target.is}`, met: runs.every((run) => run[target.figure] === target.is) };
  if ('max' in target) return { target: `${target.figure} <= ${target.max}`, met: typeof figure === 'number' && figure <= target.max };
  if ('min' in target) return { target: `${target.figure} >= ${target.min}`, met: typeof figure === 'number' && figure >= target.min };
  const { equals } = target;
  return { target: `${target.figure} = ${equals}`, met: runs.every((run) => run[target.figure] === (typeof equals === 'string' ? run[equals] : equals)) };
}

const settings = createTestSettings({ LOG_LEVEL: 'warn' });
/** The build measured: its commit, and whether the tree had changes besides. */
function build(): { commit: string; clean: boolean } | null {
  try {
    const commit = execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
    const clean = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' }).trim() === '';
    return { commit, clean };
  } catch {
    return null;
  }
}

const results: Record<string, unknown> = {
  date: new Date().toISOString(),
  build: build(),
  machine: { cpus: cpus().length, node: process.version },
  runs: RUNS,
  // Written after each scenario: false until the last has run, so a file left by a run that stopped says so.
  complete: false,
  scenarios: {},
};
let correctnessFailed = false;
const table: string[] = [];
try {
  for (const scenario of scenarios) {
    if (ONLY && !ONLY.includes(scenario.name)) continue;
    const runs: Figures[] = [];
    for (let i = 0; i < RUNS; i++) {
      const figures = await scenario.run(settings, `${Date.now().toString(36)}${i}`);
      console.log(scenario.name, `run ${i + 1}/${RUNS}`, JSON.stringify(figures));
      runs.push(figures);
    }
    const summary = summarise(runs);
    const targets = scenario.targets.map((target) => judge(target, summary, runs));
    // A text not exact, an event out of its chain: the run is wrong, not slow.
    scenario.targets.forEach((target, i) => {
      if (('is' in target || 'equals' in target) && !targets[i]!.met) correctnessFailed = true;
    });
    (results.scenarios as Record<string, unknown>)[scenario.name] = { summary, targets, runs };
    for (const [key, value] of Object.entries(summary)) {
      table.push(`${scenario.name.padEnd(12)} ${key.padEnd(30)} ${typeof value === 'object' ? `${value.median} (${value.min} – ${value.max})` : String(value)}`);
    }
    for (const target of targets) table.push(`${scenario.name.padEnd(12)} target ${target.target.padEnd(23)} ${target.met ? 'met' : 'NOT MET'}`);
    await writeFile(process.env.BENCH_OUT ?? 'bench/results.json', JSON.stringify(results, null, 2) + '\n');
  }
  results.complete = true;
  await writeFile(process.env.BENCH_OUT ?? 'bench/results.json', JSON.stringify(results, null, 2) + '\n');
} finally {
  await dropTestResources(settings);
}
console.log(`\nmedian of ${RUNS} runs (min – max); correctness targets judged on every run\n${table.join('\n')}\nwritten to ${process.env.BENCH_OUT ?? 'bench/results.json'}`);
if (correctnessFailed) console.log('a correctness target was not met: the figures above are of a run that went wrong');
process.exit(correctnessFailed ? 1 : 0);
