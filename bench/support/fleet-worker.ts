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
  /** Messages this device has seen completed, and when. */
  done: Map<string, number>;
  subscribed: boolean;
  violations: number;
  events: number;
  url: string;
  /** When this device dropped its connection, until it is subscribed again. */
  droppedAt?: number;
  /** Drop once this many events arrived, after a delay. */
  dropAfter?: { events: number; delayMs: number };
}

const TIMESTAMP = / @(\d+\.\d+)/g;
const devices: Device[] = [];
const samples: number[] = [];
/** Per appended event, the latency of its newest token: how long the append itself took to reach the device. */
const eventSamples: number[] = [];
const resubscribes: number[] = [];
let waiters: (() => void)[] = [];

/** The machine's monotonic clock, as the bench process reads it (see bench-server's `now`). */
function now(): number {
  return Number(process.hrtime.bigint()) / 1e6;
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
      if (device.droppedAt !== undefined) {
        resubscribes.push(at - device.droppedAt);
        device.droppedAt = undefined;
      }
      if (frame.type === 'snapshot') device.cursor = frame.cursor;
      notify();
      return;
    case 'event': {
      const event = frame.event!;
      if (frame.prev !== device.cursor) device.violations++;
      device.cursor = frame.cursor;
      device.events++;
      if (device.dropAfter && device.events >= device.dropAfter.events) {
        setTimeout(dropAndResume, device.dropAfter.delayMs, device);
        device.dropAfter = undefined;
      }
      if (event.type === 'message.created') device.texts.set(event.messageId, event.text ?? '');
      if (event.type === 'message.appended') {
        device.texts.set(event.messageId, (device.texts.get(event.messageId) ?? '') + event.delta);
        let newest = -Infinity;
        for (const match of event.delta!.matchAll(TIMESTAMP)) {
          const offered = Number(match[1]);
          samples.push(at - offered);
          newest = Math.max(newest, offered);
        }
        if (newest > -Infinity) eventSamples.push(at - newest);
      }
      if (event.type === 'message.completed') {
        if (!device.done.has(event.messageId)) device.done.set(event.messageId, at);
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
  const device: Device = { socket: undefined as unknown as WebSocket, conversationId, cursor: after, texts: new Map(), done: new Map(), subscribed: false, violations: 0, events: 0, url };
  return open(device).then(() => device);
}

/** Opens the device's socket and subscribes from its cursor (none: a snapshot). */
function open(device: Device): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${device.url.replace(/^http/, 'ws')}/v1/ws`);
    device.socket = socket;
    socket.on('open', () => {
      socket.send(JSON.stringify({ type: 'subscribe', conversationId: device.conversationId, ...(device.cursor ? { after: device.cursor } : {}) }));
      resolve();
    });
    socket.on('message', (data) => {
      if (device.socket === socket) receive(device, String(data));
    });
    socket.on('error', reject);
  });
}

/** The connection breaks without a goodbye; the device reconnects at once and resumes from its cursor. */
function dropAndResume(device: Device): void {
  device.socket.terminate();
  device.subscribed = false;
  device.droppedAt = now();
  open(device).catch(() => device.violations++);
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
      // The moment the last device had it: what follows (hashing, sorting the samples) is this process's own work.
      const completedAt = devices.length === 0 ? NaN : Math.max(...devices.map((device) => device.done.get(request.messageId) ?? NaN));
      const hashes: Record<string, number> = {};
      for (const device of devices) {
        const hash = createHash('sha1').update(device.texts.get(request.messageId) ?? '').digest('hex');
        hashes[hash] = (hashes[hash] ?? 0) + 1;
      }
      const texts: Record<string, string> = {};
      for (const device of devices) texts[device.conversationId] ??= createHash('sha1').update(device.texts.get(request.messageId) ?? '').digest('hex');
      samples.sort((a, b) => a - b);
      eventSamples.sort((a, b) => a - b);
      resubscribes.sort((a, b) => a - b);
      const at = (values: number[], p: number): number => values[Math.min(values.length - 1, Math.floor((p / 100) * values.length))] ?? NaN;
      return {
        type: 'completed',
        ok,
        completedAt,
        hashes,
        texts,
        resubscribes: resubscribes.length,
        resubscribeP50: at(resubscribes, 50),
        resubscribeP99: at(resubscribes, 99),
        violations: devices.reduce((sum, device) => sum + device.violations, 0),
        samples: samples.length,
        p50: at(samples, 50),
        p99: at(samples, 99),
        max: samples.at(-1) ?? NaN,
        newestTokenP50: at(eventSamples, 50),
        newestTokenP99: at(eventSamples, 99),
      };
    }
    case 'drop': {
      for (const device of devices) {
        const at = Math.random() * request.withinMs;
        device.dropAfter = { events: request.afterEvents, delayMs: at };
      }
      return { type: 'dropping' };
    }
    case 'forget':
      samples.length = 0;
      eventSamples.length = 0;
      resubscribes.length = 0;
      return { type: 'forgotten' };
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
