import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { cpuSeconds, natsServerPids, round } from './bench-server.js';

/** Processes of one role in a run (the instances, NATS, Postgres, the devices). */
export type CpuRoles = Record<string, number[]>;

export interface CpuReading {
  /** Per role, share of one core used over the window, in percent; `agents` is this process. */
  byRole: Record<string, number>;
  /** Share of the whole machine (every core) busy over the window, whoever used it, in percent. */
  machineBusyPercent: number;
}

/**
 * CPU used by each part of a run over a window. A latency figure taken on a machine with no
 * idle core says what the machine could carry, not what the service costs; this shows which it is.
 */
export class CpuMeter {
  private constructor(
    private readonly roles: CpuRoles,
    private readonly started: { at: number; roles: RoleSeconds; self: number; machine: MachineTicks },
  ) {}

  static async start(roles: CpuRoles): Promise<CpuMeter> {
    return new CpuMeter(roles, { at: performance.now(), roles: await roleSeconds(roles), self: selfSeconds(), machine: await machineTicks() });
  }

  async read(): Promise<CpuReading> {
    const seconds = (performance.now() - this.started.at) / 1000;
    const [roles, machine] = await Promise.all([roleSeconds(this.roles), machineTicks()]);
    const byRole: Record<string, number> = {};
    for (const [role, used] of Object.entries(roles)) {
      const before = this.started.roles[role]!;
      // A process that ended (or began) within the window is left out at both ends.
      let spent = 0;
      for (const [pid, value] of used) if (before.has(pid)) spent += value - before.get(pid)!;
      byRole[role] = round((100 * spent) / seconds, 0);
    }
    byRole.agents = round((100 * (selfSeconds() - this.started.self)) / seconds, 0);
    const total = machine.total - this.started.machine.total;
    const idle = machine.idle - this.started.machine.idle;
    return { byRole, machineBusyPercent: round(total > 0 ? (100 * (total - idle)) / total : NaN, 0) };
  }
}

/** The NATS servers at `natsUrl` (one, or a cluster's nodes) and every Postgres process (server, backends, writers). */
export function sharedServicePids(natsUrl: string): CpuRoles {
  return { nats: natsServerPids(natsUrl), postgres: pidsOf('postgres') };
}

function pidsOf(name: string): number[] {
  try {
    return execFileSync('pgrep', ['-x', name], { encoding: 'utf8' }).trim().split('\n').map(Number).filter(Boolean);
  } catch {
    return [];
  }
}

/** Per role, CPU seconds used so far by each of its processes still running. */
type RoleSeconds = Record<string, Map<number, number>>;

async function roleSeconds(roles: CpuRoles): Promise<RoleSeconds> {
  const entries = await Promise.all(
    Object.entries(roles).map(async ([role, pids]) => {
      const used = await Promise.all(pids.map(async (pid) => [pid, await cpuSeconds(pid).catch(() => undefined)] as const));
      return [role, new Map(used.filter((entry): entry is readonly [number, number] => entry[1] !== undefined))] as const;
    }),
  );
  return Object.fromEntries(entries);
}

function selfSeconds(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

interface MachineTicks {
  total: number;
  idle: number;
}

/** All cores' time so far, from /proc/stat (as every CPU figure here comes from /proc). */
async function machineTicks(): Promise<MachineTicks> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!;
  const ticks = line.trim().split(/\s+/).slice(1).map(Number);
  // idle + iowait
  return { total: ticks.reduce((a, b) => a + b, 0), idle: ticks[3]! + (ticks[4] ?? 0) };
}
