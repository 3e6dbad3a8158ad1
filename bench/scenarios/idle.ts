import type { Settings } from '../../libs/config/src/index.js';
import { BenchServer, idleCpuPercent, natsServerPid, round, rssBytes } from '../support/bench-server.js';
import { DeviceFleet } from '../support/fleet.js';
import { consumerCount, createConversations, sleep } from '../support/helpers.js';

/** At least 10 s, and one whole heartbeat interval, so each socket's ping is counted exactly once. */
const idleWindowMs = (settings: Settings): number => Math.max(10_000, settings.ws.heartbeatMs);

/** `devices` devices, each subscribed to a conversation of its own, then nothing happens. */
export async function idle(settings: Settings, run: string, devices: number) {
  const server = await BenchServer.start(settings);
  try {
    const ids = Array.from({ length: devices }, (_, i) => `idle-${run}-${i}`);
    await createConversations(server.base, ids);
    await sleep(1_000);
    const rssBefore = await rssBytes(server.pid);
    const fleet = new DeviceFleet();
    const connected = await fleet.connect(server.base, ids);
    await sleep(2_000);
    const rssAfter = await rssBytes(server.pid);
    const consumers = await consumerCount(settings);
    const nats = natsServerPid();
    const [cpuServer, cpuNats] = await Promise.all([idleCpuPercent([server.pid], idleWindowMs(settings)), nats ? idleCpuPercent([nats], idleWindowMs(settings)) : NaN]);
    const subscriptions = await server.metric('seqline_subscriptions_open');
    await fleet.close();
    return {
      devices,
      allSubscribed: connected.ok && subscriptions === devices,
      subscribeSeconds: round(connected.ms / 1000),
      /** Of which the devices' WebSocket handshakes, all opened from one benchmark process. */
      connectSeconds: round(connected.openMs / 1000),
      serverMemoryPerConnectionKiB: round((rssAfter - rssBefore) / devices / 1024, 1),
      serverMemoryGrowthMiB: round((rssAfter - rssBefore) / 2 ** 20, 1),
      jetStreamConsumers: consumers,
      idleCpuServerPercent: round(cpuServer),
      idleCpuNatsPercent: round(cpuNats),
      idleCpuTotalPercent: round(cpuServer + cpuNats),
    };
  } finally {
    await server.stop();
  }
}
