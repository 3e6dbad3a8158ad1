// Builds libs/client: ESM and CommonJS for packages, a minified ESM bundle for browsers
// (served by the server at /sdk/seqline-client.mjs), and reports the bundle's gzipped size.
import { build } from 'esbuild';
import { gzipSync } from 'node:zlib';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';

const entry = 'libs/client/src/index.ts';
const out = 'libs/client/dist';
mkdirSync(out, { recursive: true });
const common = { entryPoints: [entry], bundle: true, platform: 'neutral', target: 'es2020', logLevel: 'warning' };
await build({ ...common, format: 'esm', outfile: `${out}/index.mjs` });
await build({ ...common, format: 'cjs', outfile: `${out}/index.cjs` });
await build({ ...common, format: 'esm', minify: true, outfile: `${out}/browser/seqline-client.mjs` });
const minified = readFileSync(`${out}/browser/seqline-client.mjs`);
const size = { minifiedBytes: minified.length, gzippedBytes: gzipSync(minified).length };
writeFileSync(`${out}/size.json`, JSON.stringify(size, null, 2) + '\n');
console.log(`@seqline/client: ${size.minifiedBytes} bytes minified, ${size.gzippedBytes} bytes minified+gzipped`);
if (size.gzippedBytes > 15 * 1024) {
  console.error('the device SDK must stay under 15 KB minified+gzipped');
  process.exit(1);
}
