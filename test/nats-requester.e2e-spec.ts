import { randomBytes } from 'node:crypto';
import { connectNats, NatsRequester, NoResponderError, RequesterClosedError, RequestTimeoutError, type NatsConnection } from '@seqline/streams';

const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const encode = (text: string) => new TextEncoder().encode(text);

/** How a request ends when no reply comes: each way with its own error, and none of them waiting longer than it must. */
describe('NatsRequester (real nats-server)', () => {
  let nc: NatsConnection;
  const subject = `requester.${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    nc = await connectNats({ url: NATS_URL, name: 'requester-spec' });
    // Listens and never answers.
    nc.subscribe(`${subject}.silent`, { callback: () => undefined });
    nc.subscribe(`${subject}.echo`, { callback: (_error, msg) => void msg.respond(msg.data) });
    await nc.flush();
  });

  afterAll(async () => nc.close());

  it('answers each request with its own reply', async () => {
    const requester = new NatsRequester(nc);
    try {
      const replies = await Promise.all(['a', 'b', 'c'].map((text) => requester.request(`${subject}.echo`, encode(text), { timeoutMs: 5_000 })));
      expect(replies.map((reply) => reply.string())).toEqual(['a', 'b', 'c']);
    } finally {
      requester.close();
    }
  });

  it('fails a request nobody listens to with NoResponderError, at once', async () => {
    const requester = new NatsRequester(nc);
    try {
      const started = Date.now();
      await expect(requester.request(`${subject}.nobody`, encode('x'), { timeoutMs: 5_000 })).rejects.toBeInstanceOf(NoResponderError);
      expect(Date.now() - started).toBeLessThan(2_000);
    } finally {
      requester.close();
    }
  });

  it('fails an unanswered request with RequestTimeoutError once its time is up', async () => {
    const requester = new NatsRequester(nc);
    try {
      const started = performance.now();
      await expect(requester.request(`${subject}.silent`, encode('x'), { timeoutMs: 300 })).rejects.toBeInstanceOf(RequestTimeoutError);
      const waited = performance.now() - started;
      // Not before its time, and not long after (the timer, not some later sweep, ends it).
      expect(waited).toBeGreaterThanOrEqual(290);
      expect(waited).toBeLessThan(2_000);
    } finally {
      requester.close();
    }
  });

  it('on close() fails the requests still waiting with RequesterClosedError rather than letting them time out, and refuses new ones', async () => {
    const requester = new NatsRequester(nc);
    const waiting = [1, 2, 3].map((i) => requester.request(`${subject}.silent`, encode(String(i)), { timeoutMs: 60_000 }));
    const settled = Promise.allSettled(waiting);
    requester.close();
    const results = await settled;
    expect(results.map((result) => (result.status === 'rejected' ? (result.reason as Error).constructor.name : result.status))).toEqual([
      'RequesterClosedError',
      'RequesterClosedError',
      'RequesterClosedError',
    ]);
    await expect(requester.request(`${subject}.echo`, encode('late'), { timeoutMs: 5_000 })).rejects.toBeInstanceOf(RequesterClosedError);
  });
});
