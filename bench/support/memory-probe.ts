// Loaded into a benchmarked server process (`node --expose-gc --import …/memory-probe.js`), never
// into a deployed one. On request over the IPC channel it runs a full collection and answers
// with the process's memory, so figures compare live memory, not how much garbage a collection
// happened to leave behind between two readings.
import { cpuUsage, memoryUsage } from 'node:process';

export type MemoryReading = { rss: number; heapUsed: number; external: number; arrayBuffers: number; collectionCpuMs: number };

const collect = (globalThis as { gc?: () => void }).gc;

if (process.send && collect) {
  // The channel must not keep a server that was asked to stop alive.
  process.channel?.unref();
  process.on('message', (request: unknown) => {
    if (request !== 'settle') return;
    const before = cpuUsage();
    // Twice: the first collection's finalisers can free more.
    collect();
    collect();
    const used = cpuUsage(before);
    const memory = memoryUsage();
    const reply: MemoryReading = {
      rss: memory.rss,
      heapUsed: memory.heapUsed,
      external: memory.external,
      arrayBuffers: memory.arrayBuffers,
      collectionCpuMs: (used.user + used.system) / 1000,
    };
    process.send!(reply);
  });
}
