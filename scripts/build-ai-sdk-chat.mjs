// Builds the AI SDK example page (apps/ai-sdk-chat): React, useChat and the Seqline transport in
// one browser bundle, served by the server at /ai-sdk/.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';

const out = 'apps/ai-sdk-chat/dist';
mkdirSync(out, { recursive: true });
await build({
  entryPoints: ['apps/ai-sdk-chat/src/main.tsx'],
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  minify: true,
  define: { 'process.env.NODE_ENV': '"production"' },
  outfile: `${out}/chat.js`,
  logLevel: 'warning',
});
copyFileSync('apps/ai-sdk-chat/public/index.html', `${out}/index.html`);
console.log(`AI SDK example page: ${out}/`);
