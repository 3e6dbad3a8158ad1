import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './free-port.js';
import { waitForPort } from './nats-process.js';
import { postgresTool } from './binaries.js';

/** A private Postgres cluster (`initdb` into a temporary folder) on a free port, so a test can stop it. */
export class PostgresCluster {
  private constructor(
    readonly dir: string,
    readonly port: number,
  ) {}

  static async start(): Promise<PostgresCluster> {
    const base = mkdtempSync(join(tmpdir(), 'seqline-pg-'));
    chmodSync(base, 0o777);
    const dir = join(base, 'data');
    const cluster = new PostgresCluster(dir, await freePort());
    cluster.asPostgres('initdb', ['-D', dir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8']);
    await cluster.startAgain();
    return cluster;
  }

  url(database: string): string {
    return `postgresql://postgres@127.0.0.1:${this.port}/${database}`;
  }

  async startAgain(): Promise<void> {
    this.asPostgres('pg_ctl', ['-D', this.dir, '-o', `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1`, '-w', '-l', join(this.dir, 'server.log'), 'start']);
    await waitForPort(this.port, 30_000);
  }

  stop(): void {
    this.asPostgres('pg_ctl', ['-D', this.dir, '-m', 'fast', '-w', 'stop']);
  }

  destroy(): void {
    try {
      this.stop();
    } catch {}
    rmSync(join(this.dir, '..'), { recursive: true, force: true });
  }

  private asPostgres(tool: string, args: string[]): void {
    const bin = postgresTool(tool);
    const asRoot = process.getuid?.() === 0;
    execFileSync(asRoot ? 'runuser' : bin, asRoot ? ['-u', 'postgres', '--', bin, ...args] : args, { stdio: 'ignore' });
  }
}
