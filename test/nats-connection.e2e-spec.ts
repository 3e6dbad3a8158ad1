import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connectNats, JetStreamDisabledError } from '@seqline/streams';
import { eventually, freePort, natsServerBinary, TcpProxy } from '@seqline/testing';

const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';

/** A connection to NATS over a network that starts dropping every packet, as a black-holed route does. */
describe('a NATS connection whose network goes silent', () => {
  it('is given up and connected again within about 20 s, though what it had queued can never be flushed', async () => {
    const proxy = await TcpProxy.start(Number(new URL(NATS_URL).port || 4222));
    const nc = await connectNats({ url: `nats://127.0.0.1:${proxy.port}`, name: 'black-holed' });
    const statuses: { type: string; at: number }[] = [];
    const started = Date.now();
    void (async () => {
      for await (const status of nc.status()) statuses.push({ type: status.type, at: Date.now() - started });
    })();
    try {
      proxy.freeze();
      // A busy connection: far more than the kernel's buffers hold, so the client's own flush on closing never ends.
      const payload = new Uint8Array(64 * 1024);
      const subject = `blackhole.${randomBytes(4).toString('hex')}`;
      for (let i = 0; i < 512; i++) nc.publish(subject, payload);
      await eventually(() => statuses.some((status) => status.type === 'reconnect'), 30_000, 'reconnected over a new connection');
      const types = statuses.map((status) => status.type);
      expect(types.indexOf('staleConnection')).toBeGreaterThanOrEqual(0);
      expect(types.indexOf('disconnect')).toBeGreaterThan(types.indexOf('staleConnection'));
      // Two pings 5 s apart unanswered, then at most 2 s to close.
      expect(statuses.find((status) => status.type === 'disconnect')!.at).toBeLessThan(25_000);
      // The new connection works.
      const echo = `${subject}.echo`;
      nc.subscribe(echo, { callback: (_error, msg) => void msg.respond(msg.data) });
      expect((await nc.request(echo, 'ping', { timeout: 5_000 })).string()).toBe('ping');
    } finally {
      await nc.close().catch(() => undefined);
      await proxy.close();
    }
  }, 60_000);
});

describe('a NATS server without JetStream', () => {
  it('is refused at once, saying how to start it, instead of failing on the first log request', async () => {
    const port = await freePort();
    const server = spawn(natsServerBinary(), ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
    try {
      const url = `nats://127.0.0.1:${port}`;
      await eventually(async () => !!(await connectNats({ url, name: 'probe' }).catch((error: unknown) => error instanceof JetStreamDisabledError)), 10_000, 'nats-server listening');
      await expect(connectNats({ url, name: 'no-jetstream' })).rejects.toThrow(
        new JetStreamDisabledError(`NATS at 127.0.0.1:${port} runs without JetStream. Start nats-server with -js (or a jetstream block in its configuration).`),
      );
    } finally {
      server.kill('SIGKILL');
    }
  }, 30_000);
});
