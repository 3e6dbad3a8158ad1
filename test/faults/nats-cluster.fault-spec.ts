import { createTestSettings, dropTestResources, NatsCluster, ServerProcess } from '@seqline/testing';
import type { Settings } from '@seqline/config';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { expectRowsConverge, runScenario } from './scenario.js';

/** Seqline on a private three-node NATS cluster with a replicated log (`LOG_REPLICAS=3`). */
describe('a three-node NATS cluster', () => {
  let cluster: NatsCluster;
  let settings: Settings;
  const servers: ServerProcess[] = [];

  beforeAll(async () => {
    cluster = await NatsCluster.start(3);
    settings = createTestSettings({ NATS_URL: cluster.url, LOG_REPLICAS: '3' });
    for (let i = 0; i < 2; i++) servers.push(await ServerProcess.start(settings, { LOG_REPLICAS: '3' }));
  });
  afterAll(async () => {
    await Promise.all(servers.map((server) => server.crash()));
    await dropTestResources(settings).catch(() => undefined);
    await cluster.destroy();
  });

  it('keeps the log and the lease buckets on three replicas, and streams every text exact across two instances, Postgres converging', async () => {
    const nc = await connect({ servers: cluster.url.split(',') });
    try {
      const jsm = await jetstreamManager(nc);
      const replicas = async (stream: string) => (await jsm.streams.info(stream)).config.num_replicas;
      expect([await replicas(settings.log.stream), await replicas(`KV_${settings.log.stream}_LEASES`), await replicas(`KV_${settings.log.stream}_PARTITIONS`)]).toEqual([3, 3, 3]);
    } finally {
      await nc.close();
    }
    const { report, expected } = await runScenario({
      name: 'clusterr3',
      adminUrl: servers[0]!.url,
      deviceUrls: servers.map((server) => server.url),
      settings,
      conversations: 5,
      devicesPerConversation: 2,
      tokens: 200,
      tokensPerSecond: 100,
      fault: async () => undefined,
    });
    expect({ lost: report.lost, duplicated: report.duplicated, gaps: report.gaps, exact: report.devicesExact }).toEqual({ lost: 0, duplicated: 0, gaps: 0, exact: report.devices });
    await expectRowsConverge(settings.database.url, expected);
  });
});
