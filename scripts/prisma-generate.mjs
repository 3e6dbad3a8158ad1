// `prisma generate` without a schema engine download. Generating the client needs no schema
// engine, but the CLI looks for one; any file that exists stands in for it (migrations run
// through the WASM engine, see libs/persistence/src/schema-engine.ts). Node itself is one on
// every platform, where `/bin/true` exists only on some.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const cli = require.resolve('prisma/build/index.js');
const env = { ...process.env, PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY || process.execPath };
const result = spawnSync(process.execPath, [cli, 'generate', ...process.argv.slice(2)], { stdio: 'inherit', env });
process.exit(result.status ?? 1);
