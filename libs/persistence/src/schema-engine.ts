import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { bindMigrationAwareSqlAdapterFactory } from '@prisma/driver-adapter-utils';
import * as bg from '@prisma/schema-engine-wasm/schema_engine_bg';
import type { SchemaEngine } from '@prisma/schema-engine-wasm';

const require = createRequire(import.meta.url);
let wasmLoaded: Promise<void> | undefined;

/**
 * Prisma's schema engine compiled to WebAssembly: the same migration logic as
 * `prisma migrate deploy`, without the native binary the CLI downloads.
 */
async function loadWasm(): Promise<void> {
  wasmLoaded ??= (async () => {
    // The package exports only its JS; the .wasm sits beside it.
    const wasmPath = join(dirname(require.resolve('@prisma/schema-engine-wasm')), 'schema_engine_bg.wasm');
    const bytes = await readFile(wasmPath);
    const { instance } = await WebAssembly.instantiate(bytes, { './schema_engine_bg.js': withUnrefTimers(bg as unknown as WebAssembly.ModuleImports) });
    bg.__wbg_set_wasm(instance.exports);
    // wasm-bindgen's start hook seeds the externref table (undefined, null, true, false); skipping it garbles values.
    (instance.exports as { __wbindgen_start?: () => void }).__wbindgen_start?.();
  })();
  return wasmLoaded;
}

export interface OpenedSchemaEngine {
  engine: SchemaEngine;
  /** Frees the engine and closes its connections. */
  close(): Promise<void>;
}

export async function openSchemaEngine(connectionString: string, schemaPath: string): Promise<OpenedSchemaEngine> {
  await loadWasm();
  const datamodel = await readFile(schemaPath, 'utf8');
  // Our own pool, because freeing the engine does not close the connections it opened.
  const pool = new pg.Pool({ connectionString, max: 2, ...searchPathOf(connectionString) });
  const adapter = bindMigrationAwareSqlAdapterFactory(new PrismaPg(pool, { schema: schemaOf(connectionString) }));
  const log = (...args: unknown[]): void => { if (process.env.SEQLINE_DEBUG_ENGINE) console.error('engine log', JSON.stringify(args).slice(0, 300)); };
  const engine = await bg.SchemaEngine.new({ datamodels: [['schema.prisma', datamodel]] }, log, adapter);
  return {
    engine,
    async close() {
      engine.free();
      await pool.end();
    },
  };
}

/** The Postgres schema named by `?schema=` in the URL, as Prisma reads it; `public` otherwise. */
export function schemaOf(connectionString: string): string {
  return new URL(connectionString).searchParams.get('schema') ?? 'public';
}

/**
 * Connection options that make the URL's `?schema=` the search path. Prisma names the schema in
 * the queries it builds, but raw SQL names bare tables, and the `pg` driver ignores `schema` in
 * the URL: without this, every raw statement would look in `public`.
 */
export function searchPathOf(connectionString: string): { options?: string } {
  const schema = schemaOf(connectionString);
  if (schema === 'public') return {};
  // Quoted as an identifier; within `options`, a space or a backslash is escaped with a backslash.
  const identifier = `"${schema.replace(/"/g, '""')}"`.replace(/[\\\s]/g, (c) => `\\${c}`);
  return { options: `-c search_path=${identifier}` };
}

/**
 * The engine arms internal timers (up to 10 s) that outlive `free()`; unref them so a finished
 * migration never keeps the process (or a test run) alive.
 */
function withUnrefTimers(imports: WebAssembly.ModuleImports): WebAssembly.ModuleImports {
  const wrapped: WebAssembly.ModuleImports = { ...imports };
  for (const [name, value] of Object.entries(imports)) {
    if (!name.startsWith('__wbg_setTimeout_') || typeof value !== 'function') continue;
    wrapped[name] = (...args: unknown[]) => {
      const timer = (value as (...a: unknown[]) => unknown)(...args);
      (timer as { unref?: () => void })?.unref?.();
      return timer;
    };
  }
  return wrapped;
}
