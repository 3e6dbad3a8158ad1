import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { MigrationDirectory } from '@prisma/schema-engine-wasm';
import { openSchemaEngine } from './schema-engine.js';
import type { PrismaService } from './prisma.service.js';

export interface MigrateOptions {
  databaseUrl: string;
  /** Folder holding `schema.prisma` and `migrations/`. */
  prismaDir: string;
}

/** Applies every pending migration in `prisma/migrations`, recording them in `_prisma_migrations` like `prisma migrate deploy`. */
export async function applyMigrations(options: MigrateOptions): Promise<string[]> {
  const baseDir = resolve(options.prismaDir, 'migrations');
  const names = (await readdir(baseDir, { withFileTypes: true }))
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
  const migrationDirectories: MigrationDirectory[] = await Promise.all(
    names.map(async (name) => ({
      path: name,
      migrationFile: {
        path: 'migration.sql',
        content: { tag: 'ok' as const, value: await readFile(join(baseDir, name, 'migration.sql'), 'utf8') },
      },
    })),
  );
  const lockfile = await readFile(join(baseDir, 'migration_lock.toml'), 'utf8').catch(() => null);
  const { engine, close } = await openSchemaEngine(options.databaseUrl, join(options.prismaDir, 'schema.prisma'));
  try {
    const result = await engine.applyMigrations({
      migrationsList: { baseDir, lockfile: { path: 'migration_lock.toml', content: lockfile }, shadowDbInitScript: '', migrationDirectories },
      filters: { externalTables: [], externalEnums: [] },
    });
    return result.appliedMigrationNames;
  } finally {
    await close();
  }
}

/** SQL that takes a database from empty to the current schema; used to write a new migration. */
export async function diffFromEmpty(options: MigrateOptions): Promise<string> {
  const schemaPath = join(options.prismaDir, 'schema.prisma');
  const { engine, close } = await openSchemaEngine(options.databaseUrl, schemaPath);
  try {
    const content = await readFile(schemaPath, 'utf8');
    const result = await engine.diff({
      from: { tag: 'empty' },
      to: { tag: 'schemaDatamodel', files: [{ path: schemaPath, content }] },
      script: true,
      exitCode: false,
      filters: { externalTables: [], externalEnums: [] },
    });
    return result.stdout ?? '';
  } finally {
    await close();
  }
}

/** Migrations in `prisma/migrations` the database has not applied (for `seqline doctor`). */
export async function pendingMigrations(prisma: PrismaService, prismaDir: string): Promise<string[]> {
  const names = (await readdir(resolve(prismaDir, 'migrations'), { withFileTypes: true })).filter((entry) => entry.isDirectory()).map((entry) => entry.name);
  const applied = await prisma.$queryRaw<{ migration_name: string }[]>`
    SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL`;
  const done = new Set(applied.map((row) => row.migration_name));
  return names.filter((name) => !done.has(name)).sort();
}
