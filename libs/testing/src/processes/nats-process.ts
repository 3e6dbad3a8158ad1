import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './free-port.js';
import { natsServerBinary } from './binaries.js';

/** A private nats-server with JetStream on a free port, so a test can stop it without touching the shared one. */
export class NatsProcess {
  private child?: ChildProcess;
  readonly storeDir = mkdtempSync(join(tmpdir(), 'seqline-nats-'));

  private constructor(
    readonly port: number,
    private readonly config?: { file: string; env: Record<string, string> },
  ) {}

  /** With `config`, the server runs with that configuration file (users, permissions) and environment. */
  static async start(config?: { file: string; env: Record<string, string> }): Promise<NatsProcess> {
    const nats = new NatsProcess(await freePort(), config);
    await nats.startAgain();
    return nats;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  /** Starts the server on the same port and store (after `stop`). */
  async startAgain(): Promise<void> {
    const config = this.config ? ['-c', this.config.file] : [];
    this.child = spawn(natsServerBinary(), [...config, '-a', '127.0.0.1', '-p', String(this.port), '-js', '-sd', this.storeDir], {
      stdio: 'ignore',
      env: { ...process.env, ...this.config?.env },
    });
    await waitForPort(this.port, 15_000);
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((done) => child.once('exit', done));
    child.kill('SIGTERM');
    await exited;
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.storeDir, { recursive: true, force: true });
  }
}

export async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((done) => {
      const socket = tcpConnect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        done(true);
      });
      socket.once('error', () => done(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`nothing listened on port ${port} within ${timeoutMs} ms`);
    await new Promise((done) => setTimeout(done, 100));
  }
}
