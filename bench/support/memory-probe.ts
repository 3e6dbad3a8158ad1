// Loaded into a benchmarked server process (`node --expose-gc --import …/memory-probe.js`), never
// into a deployed one. On request over the IPC channel it runs a full collection and answers
// with the process's memory, so figures compare live memory, not how much garbage a collection
// happened to leave behind between two readings.
import { memoryUsage } from 'node:process';

export type MemoryReading = { rss: number; heapUsed: number; external: number };

const collect = (globalThis as { gc?: () => void }).gc;

if (process.send && collect) {
  // The channel must not keep a server that was asked to stop alive.
  process.channel?.unref();
  process.on('message', (request: unknown) => {
    if (request !== 'settle') return;
    // Twice: the first collection's finalisers can free more.
    collect();
    collect();
    const { rss, heapUsed, external } = memoryUsage();
    const reply: MemoryReading = { rss, heapUsed, external };
    process.send!(reply);
  });
}
