import { execFileSync } from 'node:child_process';
import { createTestSettings, dropTestResources, NatsCluster, natsServerBinary, ServerProcess, type ResilientDevice } from '@seqline/testing';
import type { Settings } from '@seqline/config';
import { connectNats, Lease, serializesSubjectExpectations } from '@seqline/streams';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { expectNothingLost, expectRowsConverge, runScenario, type ScenarioReport } from './scenario.js';

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));
/** The version of the nats-server these cases run (the one the cluster starts). */
function natsServerVersion(): string | undefined {
  try {
    return /v(\d+\.\d+\.\d+)/.exec(execFileSync(natsServerBinary(), ['--version'], { encoding: 'utf8' }))?.[1];
  } catch {
    return undefined;
  }
}

/**
 * Cases that failed in about one run in six on NATS 2.9.10, which predates the release that
 * serializes expected-last-subject-sequence on replicated streams (2.9.21), and where a node or
 * consumer can answer from a replica that has not applied every acknowledged write right after a
 * leader change (see docs/production.md). They run on a nats-server that has the fix, and with
 * `FAULT_CLUSTER_ALL=1` on any.
 */
const runsUnsteady = Boolean(process.env.FAULT_CLUSTER_ALL) || serializesSubjectExpectations(natsServerVersion());
const unsteady = runsUnsteady ? it : it.skip;
if (!runsUnsteady) {
  process.stdout.write(`three NATS cluster cases skipped: ${natsServerBinary()} is nats-server ${natsServerVersion() ?? '(version unknown)'}, before 2.9.21; FAULT_CLUSTER_ALL=1 runs them\n`);
}

/** Who holds the persister lease; the lease bucket may still be electing its leader after the previous case. */
async function leaseHolder(nc: Parameters<typeof Lease.holderOf>[0], stream: string): Promise<string | null> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await Lease.holderOf(nc, `${stream}_LEASES`, 'leader');
    } catch (error) {
      if (attempt >= 40) throw error;
      await sleep(250);
    }
  }
}

/**
 * Seqline on a private three-node NATS cluster with a replicated log (`LOG_REPLICAS=3`), three
 * instances and 30 devices: nodes die, restart one after another and drop off the network while
 * answers stream. Each case starts from a whole cluster.
 */
describe('a three-node NATS cluster', () => {
  let cluster: NatsCluster;
  let settings: Settings;
  const servers: ServerProcess[] = [];

  beforeAll(async () => {
    cluster = await NatsCluster.start(3);
    settings = createTestSettings({ NATS_URL: cluster.url, LOG_REPLICAS: '3' });
    for (let i = 0; i < 3; i++) servers.push(await ServerProcess.start(settings, { LOG_REPLICAS: '3' }));
  });
  afterEach(async () => {
    for (let i = 0; i < cluster.size; i++) if (!cluster.running(i)) await cluster.startNode(i);
    await cluster.waitUntilWhole(settings.log.stream);
    for (const server of servers) if (!server.running) await server.restart();
  });
  afterAll(async () => {
    await Promise.all(servers.map((server) => server.crash()));
    await dropTestResources(settings).catch(() => undefined);
    await cluster.destroy();
  });

  const stream = (name: string, fault: (devices: ResilientDevice[]) => Promise<void>, tokens = 400) =>
    runScenario({
      name,
      adminUrl: servers[1]!.url,
      deviceUrls: servers.map((server) => server.url),
      settings,
      conversations: 10,
      devicesPerConversation: 3,
      tokens,
      tokensPerSecond: 100,
      fault,
      settleMs: 90_000,
    });

  const expectExact = async ({ report, expected }: { report: ScenarioReport; expected: Map<string, string> }) => {
    expectNothingLost(report);
    await expectRowsConverge(settings.database.url, expected, 90_000);
  };

  it('keeps the log and the lease buckets on three replicas', async () => {
    const nc = await connect({ servers: cluster.url.split(',') });
    try {
      const jsm = await jetstreamManager(nc);
      const replicas = async (name: string) => (await jsm.streams.info(name)).config.num_replicas;
      expect([await replicas(settings.log.stream), await replicas(`KV_${settings.log.stream}_LEASES`), await replicas(`KV_${settings.log.stream}_PARTITIONS`)]).toEqual([3, 3, 3]);
    } finally {
      await nc.close();
    }
  });

  it('loses nothing when the node leading the log is killed mid-stream', async () => {
    await expectExact(
      await stream('clusterkill', async () => {
        await cluster.kill(await cluster.leaderOf(settings.log.stream));
      }),
    );
  });

  it('moves a connection off a node that hangs (SIGSTOP) to another node within 40 s', async () => {
    const nodes = cluster.url.split(',');
    const nc = await connectNats({ url: nodes[0]!, name: 'hung-node-probe' });
    try {
      const hungAt = Date.now();
      cluster.pause(0);
      let movedAfterMs: number | undefined;
      for await (const status of nc.status()) {
        if (status.type === 'reconnect') {
          movedAfterMs = Date.now() - hungAt;
          break;
        }
      }
      cluster.resume(0);
      expect(nc.getServer()).not.toBe(nodes[0]!.replace('nats://', ''));
      expect(movedAfterMs).toBeLessThan(40_000);
      await nc.flush();
    } finally {
      cluster.resume(0);
      await nc.close();
    }
  });

  unsteady('loses nothing while every node restarts, one after another', async () => {
    await expectExact(
      await stream(
        'clusterrolling',
        async () => {
          for (let i = 0; i < cluster.size; i++) {
            await cluster.stop(i);
            await sleep(1_000);
            await cluster.startNode(i);
            await cluster.waitUntilWhole(settings.log.stream);
          }
        },
        1_500,
      ),
    );
  });

  unsteady('loses nothing when a node is cut off for 10 s (SIGSTOP) and comes back', async () => {
    await expectExact(
      await stream(
        'clusterpause',
        async () => {
          const leader = await cluster.leaderOf(settings.log.stream);
          cluster.pause(leader);
          await sleep(10_000);
          cluster.resume(leader);
        },
        1_500,
      ),
    );
  });

  unsteady('loses nothing when an instance is killed during a leader election', async () => {
    await expectExact(
      await stream('clusterelection', async () => {
        // The instance running the persister, killed while the log has no leader.
        const nc = await connect({ servers: cluster.url.split(',') });
        const holder = await leaseHolder(nc, settings.log.stream).finally(() => nc.close());
        const victim = servers.find((server) => holder?.includes(`-${server.pid}-`)) ?? servers[0]!;
        await cluster.kill(await cluster.leaderOf(settings.log.stream));
        await victim.crash();
        await sleep(3_000);
        await victim.restart();
      }),
    );
  });
});
