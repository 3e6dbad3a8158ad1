import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Settings } from '@seqline/config';
import { freePort } from './free-port.js';

/** A server instance as its own OS process (the built `dist`), so it can be killed for real. */
export class ServerProcess {
  private child?: ChildProcess;
  readonly url: string;
  exited: Promise<number | null> = Promise.resolve(null);

  private constructor(
    readonly port: number,
    private readonly env: Record<string, string>,
  ) {
    this.url = `http://127.0.0.1:${port}`;
  }

  static async start(settings: Settings, env: Record<string, string> = {}): Promise<ServerProcess> {
    const port = await freePort();
    const server = new ServerProcess(port, {
      PORT: String(port),
      HOST: '127.0.0.1',
      DATABASE_URL: settings.database.url,
      NATS_URL: settings.nats.url,
      SEQLINE_PREFIX: settings.log.prefix,
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'error',
      ...env,
    });
    await server.restart();
    return server;
  }

  get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async restart(): Promise<void> {
    // TEST_SERVER_LOGS=<folder> keeps each instance's structured log there, for a failing fault case.
    const logs = process.env.TEST_SERVER_LOGS;
    if (logs) mkdirSync(logs, { recursive: true });
    const out = logs ? openSync(join(logs, `server-${this.port}.log`), 'a') : 'ignore';
    const child = spawn(process.execPath, [resolve('dist/apps/server/src/main.js')], {
      env: { ...process.env, ...this.env },
      stdio: ['ignore', out, out === 'ignore' ? 'inherit' : out],
    });
    if (typeof out === 'number') closeSync(out);
    this.child = child;
    this.exited = new Promise((done) => child.once('exit', (code) => done(code)));
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        if ((await fetch(`${this.url}/health`)).ok) return;
      } catch {}
      if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode} while starting`);
      if (Date.now() > deadline) throw new Error('server did not become healthy');
      await new Promise((done) => setTimeout(done, 100));
    }
  }

  /** `kill -9`: no drain, no goodbye. */
  async crash(): Promise<void> {
    this.child?.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM: the server drains and tells devices it is going away. */
  async stop(): Promise<number | null> {
    this.child?.kill('SIGTERM');
    return this.exited;
  }
}
