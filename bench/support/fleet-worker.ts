// A fleet of WebSocket devices in a process of its own, so the devices' work does not slow the
// producer it is timed against. Driven over IPC by fleet.ts.
import { createHash } from 'node:crypto';
import WebSocket from 'ws';
import type { FleetReply, FleetRequest } from './fleet.js';

interface Device {
  socket: WebSocket;
  conversationId: string;
  cursor?: string;
  texts: Map<string, string>;
  done: Set<string>;
  subscribed: boolean;
  violations: number;
  events: number;
}

const TIMESTAMP = / @(\d+\.\d+)/g;
const devices: Device[] = [];
const samples: number[] = [];
let waiters: (() => void)[] = [];

function now(): number {
  return performance.timeOrigin + performance.now();
}

function notify(): void {
  const current = waiters;
  waiters = [];
  for (const check of current) check();
}

function until(predicate: () => boolean, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    const check = (): void => {
      if (predicate()) {
        clearTimeout(timer);
        resolve(true);
      } else waiters.push(check);
    };
    check();
  });
}

function receive(device: Device, raw: string): void {
  const at = now();
  const frame = JSON.parse(raw) as { type: string; cursor?: string; prev?: string; event?: { type: string; messageId: string; delta?: string; text?: string } };
  switch (frame.type) {
    case 'snapshot':
    case 'subscribed':
      device.subscribed = true;
      if (frame.type === 'snapshot') device.cursor = frame.cursor;
      notify();
      return;
    case 'event': {
      const event = frame.event!;
      if (frame.prev !== device.cursor) device.violations++;
      device.cursor = frame.cursor;
      device.events++;
      if (event.type === 'message.created') device.texts.set(event.messageId, event.text ?? '');
      if (event.type === 'message.appended') {
        device.texts.set(event.messageId, (device.texts.get(event.messageId) ?? '') + event.delta);
        for (const match of event.delta!.matchAll(TIMESTAMP)) samples.push(at - Number(match[1]));
      }
      if (event.type === 'message.completed') {
        device.done.add(event.messageId);
        notify();
      }
      return;
    }
    case 'error':
      device.violations++;
      notify();
      return;
    default:
      return;
  }
}

function connect(url: string, conversationId: string, after: string | undefined): Promise<Device> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/ws`);
    const device: Device = { socket, conversationId, cursor: after, texts: new Map(), done: new Set(), subscribed: false, violations: 0, events: 0 };
    socket.on('open', () => {
      socket.send(JSON.stringify({ type: 'subscribe', conversationId, ...(after ? { after } : {}) }));
      resolve(device);
    });
    socket.on('message', (data) => receive(device, String(data)));
    socket.on('error', reject);
  });
}

async function handle(request: FleetRequest): Promise<FleetReply> {
  switch (request.cmd) {
    case 'connect': {
      const started = now();
      const { url, conversations, concurrency } = request;
      // A sliding window of connections being opened, as many phones arriving at once would.
      let next = 0;
      await Promise.all(
        Array.from({ length: Math.min(concurrency, conversations.length) }, async () => {
          while (next < conversations.length) devices.push(await connect(url, conversations[next++]!, undefined));
        }),
      );
      const openMs = now() - started;
      const ok = await until(() => devices.every((device) => device.subscribed), 120_000);
      return { type: 'connected', ok, ms: now() - started, openMs };
    }
    case 'complete': {
      const ok = await until(() => devices.every((device) => device.done.has(request.messageId)), request.timeoutMs);
      const hashes: Record<string, number> = {};
      for (const device of devices) {
        const hash = createHash('sha1').update(device.texts.get(request.messageId) ?? '').digest('hex');
        hashes[hash] = (hashes[hash] ?? 0) + 1;
      }
      samples.sort((a, b) => a - b);
      const at = (p: number): number => samples[Math.min(samples.length - 1, Math.floor((p / 100) * samples.length))] ?? NaN;
      return {
        type: 'completed',
        ok,
        hashes,
        violations: devices.reduce((sum, device) => sum + device.violations, 0),
        samples: samples.length,
        p50: at(50),
        p99: at(99),
        max: samples.at(-1) ?? NaN,
      };
    }
    case 'close': {
      await Promise.all(
        devices.map((device) => new Promise<void>((resolve) => {
          if (device.socket.readyState === WebSocket.CLOSED) return resolve();
          device.socket.once('close', () => resolve());
          device.socket.close();
        })),
      );
      return { type: 'closed' };
    }
    default: {
      const unreachable: never = request;
      throw new Error(`unknown request ${JSON.stringify(unreachable)}`);
    }
  }
}

process.on('message', (request: FleetRequest) => {
  handle(request).then(
    (reply) => process.send!(reply),
    (error: unknown) => process.send!({ type: 'failed', message: String(error) }),
  );
});
