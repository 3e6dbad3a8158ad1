import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { PrismaPg } from '@prisma/adapter-pg';
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
    const { instance } = await WebAssembly.instantiate(bytes, { './schema_engine_bg.js': bg as unknown as WebAssembly.ModuleImports });
    bg.__wbg_set_wasm(instance.exports);
    // wasm-bindgen's start hook seeds the externref table (undefined, null, true, false); skipping it garbles values.
    (instance.exports as { __wbindgen_start?: () => void }).__wbindgen_start?.();
  })();
  return wasmLoaded;
}

export async function openSchemaEngine(connectionString: string, schemaPath: string): Promise<SchemaEngine> {
  await loadWasm();
  const datamodel = await readFile(schemaPath, 'utf8');
  const adapter = bindMigrationAwareSqlAdapterFactory(new PrismaPg({ connectionString }, { schema: schemaOf(connectionString) }));
  const log = (...args: unknown[]): void => { if (process.env.SEQLINE_DEBUG_ENGINE) console.error('engine log', JSON.stringify(args).slice(0, 300)); };
  return bg.SchemaEngine.new({ datamodels: [['schema.prisma', datamodel]] }, log, adapter);
}

/** The Postgres schema named by `?schema=` in the URL, as Prisma reads it; `public` otherwise. */
export function schemaOf(connectionString: string): string {
  return new URL(connectionString).searchParams.get('schema') ?? 'public';
}
