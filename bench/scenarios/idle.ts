import type { Settings } from '../../libs/config/src/index.js';
import { BenchServer, idleCpuPercent, natsServerPids, round } from '../support/bench-server.js';
import { DeviceFleet } from '../support/fleet.js';
import type { MemoryReading } from '../support/memory-probe.js';
import { consumerCount, createConversations, sleep } from '../support/helpers.js';

/** At least 10 s, and one whole heartbeat interval, so each socket's ping is counted exactly once. */
const idleWindowMs = (settings: Settings): number => Math.max(10_000, settings.ws.heartbeatMs);
/**
 * The one-off work a burst of subscribes leaves behind: V8 collecting the burst's garbage, and
 * the snapshot states kept for devices that join late, dropped 30 s after their last use by a
 * sweep every 5 s, collected, and followed about 8 s later by V8's memory reducer (up to three
 * more full collections). Idle is what comes after.
 */
const SETTLE_MS = 50_000;

const liveGrowth = (from: MemoryReading, to: MemoryReading): number => to.heapUsed + to.external - from.heapUsed - from.external;

/** `devices` devices, each subscribed to a conversation of its own, then nothing happens. */
export async function idle(settings: Settings, run: string, devices: number) {
  const server = await BenchServer.start(settings);
  try {
    const ids = Array.from({ length: devices }, (_, i) => `idle-${run}-${i}`);
    await createConversations(server.base, ids);
    await sleep(1_000);
    const before = await server.settle();
    const fleet = new DeviceFleet();
    const connected = await fleet.connect(server.base, ids);
    await sleep(2_000);
    // Memory after a full collection: what the connections hold, not garbage not yet collected.
    const after = await server.settle();
    const consumers = await consumerCount(settings);
    const nats = natsServerPids(settings.nats.url)[0];
    const cpu = (ms: number) => Promise.all([idleCpuPercent([server.pid], ms), nats ? idleCpuPercent([nats], ms) : NaN]);
    const [settleServer, settleNats] = await cpu(SETTLE_MS);
    const [cpuServer, cpuNats] = await cpu(idleWindowMs(settings));
    // Steady state: what the connections hold once the snapshot states are gone. Read after the
    // idle window, not before: a forced full collection arms V8's memory reducer, whose own
    // collections 8 s later would be counted as idle work.
    const settled = await server.settle();
    const subscriptions = await server.metric('seqline_subscriptions_open');
    await fleet.close();
    return {
      devices,
      allSubscribed: connected.ok && subscriptions === devices,
      subscribeSeconds: round(connected.ms / 1000),
      /** Of which the devices' WebSocket handshakes, all opened from one benchmark process. */
      connectSeconds: round(connected.openMs / 1000),
      /**
       * Live memory: V8's heap and what it accounts outside it (buffers), after full collections
       * before and 2 s after connecting, snapshot states still held. Native memory of each socket
       * (libuv's TCP handle) is not in it.
       */
      serverMemoryPerConnectionKiB: round(liveGrowth(before, after) / devices / 1024, 1),
      /** The same once settled (snapshot states dropped). */
      settledMemoryPerConnectionKiB: round(liveGrowth(before, settled) / devices / 1024, 1),
      /**
       * Resident memory, read after the same collections. Only indicative: V8 keeps pages it freed
       * (here from creating the conversations) and reuses them, so it can even shrink.
       */
      residentGrowthMiB: round((after.rss - before.rss) / 2 ** 20, 1),
      jetStreamConsumers: consumers,
      /** Server and nats-server over the 50 s after all subscribed (see SETTLE_MS). */
      settleCpuTotalPercent: round(settleServer + settleNats),
      idleCpuServerPercent: round(cpuServer),
      idleCpuNatsPercent: round(cpuNats),
      idleCpuTotalPercent: round(cpuServer + cpuNats),
    };
  } finally {
    await server.stop();
  }
}
