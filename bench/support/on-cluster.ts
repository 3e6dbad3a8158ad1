import type { Settings } from '../../libs/config/src/index.js';
import { NatsCluster } from '../../libs/testing/src/processes/nats-cluster.js';

/**
 * Runs a scenario against a private three-node NATS cluster with the log and lease buckets on
 * three replicas (R3), so its figures sit next to the single node's: what replication costs.
 * The three nodes share this machine's cores with the server and the load, as the single node does.
 */
export function onCluster<T>(scenario: (settings: Settings, run: string) => Promise<T>) {
  return async (settings: Settings, run: string): Promise<T> => {
    const cluster = await NatsCluster.start(3);
    try {
      return await scenario({ ...settings, nats: { url: cluster.url }, log: { ...settings.log, replicas: 3 } }, run);
    } finally {
      await cluster.destroy();
    }
  };
}
