import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The Seqline installation this code runs from: the nearest folder above this module that holds
 * `prisma/schema.prisma` (the repository, or an image's /app), so a server or `seqline` started
 * from another working directory (a service manager without one) still finds its migrations and
 * web assets. The working directory when none is found.
 */
export function installRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'prisma', 'schema.prisma'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) return process.cwd();
    dir = parent;
  }
}

/** The folder of the Prisma schema and its migrations: `SEQLINE_PRISMA_DIR`, or the installation's `prisma/`. */
export function prismaDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.SEQLINE_PRISMA_DIR ? resolve(env.SEQLINE_PRISMA_DIR) : join(installRoot(), 'prisma');
}
