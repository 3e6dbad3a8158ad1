import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { freePorts } from './free-port.js';
import { waitForPort } from './nats-process.js';
import { natsServerBinary } from './binaries.js';

interface Node {
  name: string;
  port: number;
  clusterPort: number;
  storeDir: string;
  configFile: string;
  child?: ChildProcess;
}

/**
 * A private three-node nats-server cluster with JetStream on free loopback ports (client and
 * route ports, a store folder each), so a fault case can kill, stop or pause single nodes.
 */
export class NatsCluster {
  private readonly dir = mkdtempSync(join(tmpdir(), 'seqline-nats-cluster-'));

  private constructor(private readonly nodes: Node[]) {}

  static async start(size = 3): Promise<NatsCluster> {
    const nodes: Node[] = [];
    // Taken one at a time, two of them could be the same port: a node would then listen twice on it and never start.
    const ports = await freePorts(2 * size);
    for (let i = 0; i < size; i++) nodes.push({ name: `n${i + 1}`, port: ports[2 * i]!, clusterPort: ports[2 * i + 1]!, storeDir: '', configFile: '' });
    const cluster = new NatsCluster(nodes);
    for (const node of nodes) {
      node.storeDir = join(cluster.dir, node.name);
      node.configFile = join(cluster.dir, `${node.name}.conf`);
      const routes = nodes.filter((other) => other !== node).map((other) => `nats-route://127.0.0.1:${other.clusterPort}`);
      writeFileSync(
        node.configFile,
        [
          `server_name: ${node.name}`,
          `listen: 127.0.0.1:${node.port}`,
          `jetstream { store_dir: "${node.storeDir}" }`,
          `cluster { name: seqline-test, listen: 127.0.0.1:${node.clusterPort}, routes: [${routes.join(', ')}] }`,
        ].join('\n'),
      );
    }
    await Promise.all(nodes.map((_, i) => cluster.startNode(i)));
    await cluster.waitForJetStream();
    return cluster;
  }

  /** Every node, as `NATS_URL` takes them. */
  get url(): string {
    return this.nodes.map((node) => `nats://127.0.0.1:${node.port}`).join(',');
  }

  get size(): number {
    return this.nodes.length;
  }

  nodeName(index: number): string {
    return this.nodes[index]!.name;
  }

  /** Whether the node's process is alive (it may be paused). */
  running(index: number): boolean {
    const child = this.nodes[index]!.child;
    return !!child && child.exitCode === null && child.signalCode === null;
  }

  async startNode(index: number): Promise<void> {
    const node = this.nodes[index]!;
    node.child = spawn(natsServerBinary(), ['-c', node.configFile], { stdio: 'ignore' });
    await waitForPort(node.port, 15_000);
  }

  /** The node that leads `stream` now (its index). */
  async leaderOf(stream: string): Promise<number> {
    const nc = await connect({ servers: this.url.split(',') });
    try {
      const info = await (await jetstreamManager(nc)).streams.info(stream);
      const index = this.nodes.findIndex((node) => node.name === info.cluster?.leader);
      if (index < 0) throw new Error(`stream ${stream} has no leader (${info.cluster?.leader ?? 'none'})`);
      return index;
    } finally {
      await nc.close();
    }
  }

  /** Until every node is up and `stream` has a leader with every replica current, so the next fault starts from a whole cluster. */
  async waitUntilWhole(stream: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const nc = await connect({ servers: this.url.split(',') });
    try {
      // No account check up front: a node that has just restarted may not answer JetStream yet.
      const jsm = await jetstreamManager(nc, { timeout: 2_000, checkAPI: false });
      for (;;) {
        try {
          const info = await jsm.streams.info(stream);
          const replicas = info.cluster?.replicas ?? [];
          if (info.cluster?.leader && replicas.length === this.nodes.length - 1 && replicas.every((replica) => replica.current && !replica.offline)) return;
        } catch (error) {
          if (Date.now() > deadline) throw error;
        }
        if (Date.now() > deadline) throw new Error(`stream ${stream} did not become whole in ${timeoutMs} ms`);
        await new Promise((done) => setTimeout(done, 250));
      }
    } finally {
      await nc.close();
    }
  }

  async kill(index: number): Promise<void> {
    await this.signal(index, 'SIGKILL');
  }

  async stop(index: number): Promise<void> {
    await this.signal(index, 'SIGTERM');
  }

  pause(index: number): void {
    this.nodes[index]!.child?.kill('SIGSTOP');
  }

  resume(index: number): void {
    this.nodes[index]!.child?.kill('SIGCONT');
  }

  async destroy(): Promise<void> {
    for (const [i] of this.nodes.entries()) {
      this.resume(i);
      await this.signal(i, 'SIGKILL');
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async signal(index: number, signal: NodeJS.Signals): Promise<void> {
    const child = this.nodes[index]!.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((done) => child.once('exit', done));
    child.kill(signal);
    await exited;
  }

  /** Until the cluster has a JetStream meta leader and takes API requests. */
  private async waitForJetStream(): Promise<void> {
    const deadline = Date.now() + 30_000;
    const nc = await connect({ servers: this.url.split(',') });
    try {
      for (;;) {
        try {
          await (await jetstreamManager(nc, { timeout: 2_000 })).getAccountInfo();
          return;
        } catch (error) {
          if (Date.now() > deadline) throw error;
          await new Promise((done) => setTimeout(done, 250));
        }
      }
    } finally {
      await nc.close();
    }
  }
}
