import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** The nats-server the fault suites start their own nodes with: `NATS_SERVER`, else the first on `PATH` (or in `/usr/sbin`). */
export function natsServerBinary(): string {
  return process.env.NATS_SERVER ?? onPath('nats-server', ['/usr/sbin', '/usr/local/bin']) ?? 'nats-server';
}

/**
 * A Postgres server tool (`initdb`, `pg_ctl`): from `PG_BIN_DIR`, else `pg_config --bindir`, else
 * the newest of Debian's `/usr/lib/postgresql/<version>/bin`, else `PATH`.
 */
export function postgresTool(tool: string): string {
  const dir = process.env.PG_BIN_DIR ?? pgConfigBinDir() ?? newestDebianBinDir();
  return dir ? join(dir, tool) : tool;
}

function onPath(name: string, extra: string[]): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), ...extra].filter((dir) => dir.length > 0);
  return dirs.map((dir) => join(dir, name)).find((file) => existsSync(file));
}

function pgConfigBinDir(): string | undefined {
  try {
    const dir = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return existsSync(join(dir, 'initdb')) ? dir : undefined;
  } catch {
    return undefined;
  }
}

function newestDebianBinDir(): string | undefined {
  if (!existsSync('/usr/lib/postgresql')) return undefined;
  // By number: 16 is newer than 9.6.
  const newest = readdirSync('/usr/lib/postgresql').sort((a, b) => parseFloat(a) - parseFloat(b)).at(-1);
  return newest === undefined ? undefined : join('/usr/lib/postgresql', newest, 'bin');
}
