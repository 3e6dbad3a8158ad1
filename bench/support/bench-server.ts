import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import type { Settings } from '../../libs/config/src/index.js';
import { fileURLToPath } from 'node:url';
import type { MemoryReading } from './memory-probe.js';
import { freePort } from '../../libs/testing/src/processes/free-port.js';
import { metric } from '../../libs/testing/src/rest-client.js';

/** A server instance under test, as its own process, with what the benchmarks read off it. */
export class BenchServer {
  readonly base: string;

  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
  ) {
    this.base = `http://127.0.0.1:${port}`;
  }

  static async start(settings: Settings, env: Record<string, string> = {}): Promise<BenchServer> {
    // A port nothing listens on: two instances on one port would look like one answering twice.
    const port = await freePort();
    const flags = [
      ...(process.env.BENCH_PROFILE ? ['--cpu-prof', '--cpu-prof-dir=/tmp/prof'] : []),
      '--expose-gc',
      '--import',
      fileURLToPath(new URL('./memory-probe.js', import.meta.url)),
    ];
    const child = spawn(process.execPath, [...flags, 'dist/apps/server/src/main.js'], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: {
        ...process.env,
        PORT: String(port),
        HOST: '127.0.0.1',
        DATABASE_URL: settings.database.url,
        NATS_URL: settings.nats.url,
        SEQLINE_PREFIX: settings.log.prefix,
        LOG_REPLICAS: String(settings.log.replicas),
        LOG_LEVEL: 'warn',
        // Benchmarks drive single conversations harder than the default abuse limit allows.
        LIMIT_AGENT_COMMANDS_PER_SECOND: '1000000',
        ...env,
      },
    });
    const server = new BenchServer(child, port);
    for (let i = 0; i < 240; i++) {
      try {
        if ((await fetch(`${server.base}/health`)).ok) return server;
      } catch {}
      if (child.exitCode !== null) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    child.kill('SIGKILL');
    throw new Error('server did not start');
  }

  get pid(): number {
    return this.child.pid!;
  }

  async metric(name: string): Promise<number> {
    return (await metric(this.base, name)) ?? 0;
  }

  /** The sum of every series of a metric (all label values). */
  async metricSum(name: string): Promise<number> {
    const text = await (await fetch(`${this.base}/metrics`)).text();
    return text
      .split('\n')
      .filter((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`))
      .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  }

  /** Memory after a full collection in the server (see memory-probe.ts). */
  settle(): Promise<MemoryReading> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('server did not answer the memory probe')), 30_000);
      this.child.once('message', (reading: MemoryReading) => {
        clearTimeout(timer);
        resolve(reading);
      });
      this.child.send('settle');
    });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGTERM');
    await exited;
  }
}

/** Resident memory of a process, in bytes. */
export async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

/** CPU time (user + system) a process has used so far, in seconds. */
export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * The pids of the NATS servers listening at `urls` (one URL, or a cluster's comma-separated list):
 * the ones the benchmark talks to, not others on the machine.
 */
export function natsServerPids(urls: string): number[] {
  return urls.split(',').flatMap((url) => {
    try {
      const port = new URL(url.trim().replace(/^nats:/, 'http:')).port || '4222';
      const listening = execFileSync('ss', ['-Hltnp', `sport = :${port}`], { encoding: 'utf8' });
      const pid = Number(/pid=(\d+)/.exec(listening)?.[1]);
      return pid ? [pid] : [];
    } catch {
      return [];
    }
  });
}

/** Share of one core two processes used over `ms` of doing nothing, in percent. */
export async function idleCpuPercent(pids: number[], ms: number): Promise<number> {
  const before = await Promise.all(pids.map(cpuSeconds));
  await new Promise((resolve) => setTimeout(resolve, ms));
  const after = await Promise.all(pids.map(cpuSeconds));
  return (after.reduce((sum, value, i) => sum + value - before[i]!, 0) / (ms / 1000)) * 100;
}

export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

export const round = (n: number, digits = 2): number => Number(n.toFixed(digits));

/**
 * Milliseconds on the machine's monotonic clock, with sub-millisecond precision: the same clock in
 * every process, so a token stamped here and received in the devices' process compare, and no
 * step of the wall clock between two processes' starts shifts them.
 */
export function now(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}
