import { randomBytes } from 'node:crypto';
import { connectNats, NatsRequester, type NatsConnection } from '@seqline/streams';

const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const CHAINS = 300;

/** Counts the socket writes a connection makes (nats.js hands each flush to `transport.send`). */
function countWrites(nc: NatsConnection): () => number {
  const transport = (nc as unknown as { protocol: { transport: { send(frame: Uint8Array): unknown } } }).protocol.transport;
  const send = transport.send.bind(transport);
  let writes = 0;
  transport.send = (frame: Uint8Array) => {
    writes++;
    return send(frame);
  };
  return () => writes;
}

/** Waits `depth` microtask turns, as a handler that awaits cached state does. */
async function after(depth: number): Promise<void> {
  for (let i = 0; i < depth; i++) await Promise.resolve();
}

describe('NATS writes coalesced per event-loop turn (real nats-server)', () => {
  let publisher: NatsConnection;
  let receiver: NatsConnection;
  const subject = `coalesce.${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    publisher = await connectNats({ url: NATS_URL, name: 'coalescing-publisher' });
    receiver = await connectNats({ url: NATS_URL, name: 'coalescing-receiver' });
  });

  afterAll(async () => {
    await publisher.close();
    await receiver.close();
  });

  it('sends publishes made by many async chains in one turn as one write, all of them, in the order they were made', async () => {
    const received: string[] = [];
    const all = new Promise<void>((resolve) => {
      receiver.subscribe(`${subject}.a`, {
        callback: (_error, msg) => {
          received.push(msg.string());
          if (received.length === CHAINS) resolve();
        },
      });
    });
    await receiver.flush();
    const writes = countWrites(publisher);
    const sent: string[] = [];
    await Promise.all(
      Array.from({ length: CHAINS }, async (_, i) => {
        await after(i % 7);
        sent.push(String(i));
        publisher.publish(`${subject}.a`, String(i));
      }),
    );
    await all;
    expect(received).toEqual(sent);
    expect(new Set(received).size).toBe(CHAINS);
    // Without coalescing each microtask run that published flushes on its own: one write per depth.
    expect(writes()).toBe(1);
  });

  it('still sends at once what exceeds the client flush threshold, and keeps later publishes after it', async () => {
    const received: number[] = [];
    const both = new Promise<void>((resolve) => {
      receiver.subscribe(`${subject}.b`, {
        callback: (_error, msg) => {
          received.push(msg.data.length);
          if (received.length === 2) resolve();
        },
      });
    });
    await receiver.flush();
    publisher.publish(`${subject}.b`, new Uint8Array(100 * 1024));
    publisher.publish(`${subject}.b`, new Uint8Array(3));
    await both;
    expect(received).toEqual([100 * 1024, 3]);
  });

  it('still sends what was published right before the connection closes', async () => {
    const closing = await connectNats({ url: NATS_URL, name: 'coalescing-closing' });
    const received: string[] = [];
    const arrived = new Promise<void>((resolve) => {
      receiver.subscribe(`${subject}.c`, {
        callback: (_error, msg) => {
          received.push(msg.string());
          if (received.length === 3) resolve();
        },
      });
    });
    await receiver.flush();
    for (const text of ['one', 'two', 'three']) closing.publish(`${subject}.c`, text);
    await closing.close();
    await Promise.race([arrived, new Promise((resolve) => setTimeout(resolve, 5_000))]);
    expect(received).toEqual(['one', 'two', 'three']);
  });

  it('answers requests and replies made in the same turn', async () => {
    receiver.subscribe(`${subject}.echo`, { callback: (_error, msg) => void msg.respond(msg.data) });
    await receiver.flush();
    const requester = new NatsRequester(publisher);
    try {
      const replies = await Promise.all(Array.from({ length: 50 }, (_, i) => requester.request(`${subject}.echo`, new TextEncoder().encode(`q${i}`), { timeoutMs: 5_000 })));
      expect(replies.map((reply) => reply.string())).toEqual(Array.from({ length: 50 }, (_, i) => `q${i}`));
    } finally {
      requester.close();
    }
  });
});
