// Runs the server and the demo agent side by side and opens a demo conversation.
// Usage: npm run demo   (after cloning; NATS and Postgres must be reachable, see README)
//        npm run demo:ai-sdk   the same with the AI SDK example agent (streamText) and its React page
import { spawn } from 'node:child_process';

const port = process.env.PORT ?? '3000';
const aiSdk = process.argv.includes('--ai-sdk');
const base = `http://127.0.0.1:${port}`;
const children = [];

function run(name, file) {
  const child = spawn(process.execPath, [file], { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, PORT: port } });
  child.on('exit', (code, signal) => {
    if (!stopping) {
      console.error(`${name} exited (${signal ?? code}); stopping the demo`);
      stop(1);
    }
  });
  children.push(child);
}

let stopping = false;
function stop(code = 0) {
  stopping = true;
  for (const child of children) child.kill('SIGTERM');
  // Still draining after 3 s: killed, so nothing outlives the demo.
  setTimeout(() => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    process.exit(code);
  }, 3000);
  const exited = (child) => child.exitCode !== null || child.signalCode !== null;
  Promise.all(children.map((child) => new Promise((resolve) => (exited(child) ? resolve() : child.once('exit', resolve))))).then(() => process.exit(code));
}
process.on('SIGINT', () => stop());
process.on('SIGTERM', () => stop());

run('server', 'dist/apps/server/src/main.js');
for (let i = 0; ; i++) {
  try {
    // A port held by something that never answers must not hang the demo.
    if ((await fetch(`${base}/health`, { signal: AbortSignal.timeout(2_000) })).ok) break;
  } catch {}
  if (stopping) await new Promise(() => undefined);
  if (i > 120) {
    console.error('server did not become healthy within 60 s');
    stop(1);
    await new Promise(() => undefined);
  }
  await new Promise((resolve) => setTimeout(resolve, 500));
}
if (aiSdk) run('AI SDK agent', 'dist/apps/ai-sdk-agent/src/main.js');
else run('demo agent', 'dist/apps/demo-agent/src/main.js');
const created = await fetch(`${base}/v1/conversations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: 'demo', title: 'Demo conversation' }) });
// 409: it exists from an earlier run. Anything else (401 with AUTH_JWT_SECRET set): the commands below would fail too.
if (!created.ok && created.status !== 409) {
  const hint = created.status === 401 || created.status === 403 ? '\nThe demo runs with authentication off: unset AUTH_JWT_SECRET, AUTH_JWKS_URL and ADMIN_API_KEYS.' : '';
  console.error(`could not create the demo conversation: ${created.status} ${await created.text()}${hint}`);
  stop(1);
  await new Promise(() => undefined);
}
console.log(`
  Seqline demo is running.
    Web demo:        ${base}/?conversation=demo${aiSdk ? `\n    useChat page:    ${base}/ai-sdk/?conversation=demo` : ''}
    Post a prompt:   curl -X POST ${base}/v1/conversations/demo/messages -H 'content-type: application/json' -d '{"messageId":"q-'$(date +%s)'","text":"Tell me about Seqline"}'
    Watch it (SSE):  curl -N ${base}/v1/conversations/demo/stream
    History (REST):  curl ${base}/v1/conversations/demo/messages
  Ctrl-C stops it.
`);
