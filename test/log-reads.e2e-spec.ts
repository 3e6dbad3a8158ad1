import { JetStreamError } from '@nats-io/jetstream';
import { ConversationLog } from '@seqline/streams';
import { createConversation, eventually, http, useSeqline } from '@seqline/testing';

/** Reading a conversation's log when its reader consumer fails (its node gone) before it delivered anything. */
describe('a log read whose reader fails', () => {
  const seqline = useSeqline();

  /** A conversation with one posted message per id, all of them in the log; a reader of it. */
  async function withMessages(conversationId: string, ids: string[]): Promise<ConversationLog> {
    const { url, infra } = seqline.server;
    await createConversation(url, conversationId);
    for (const id of ids) expect((await http(url, 'POST', `/v1/conversations/${conversationId}/messages`, { messageId: id, text: `text ${id}`, authorId: 'u' })).status).toBe(202);
    const log = new ConversationLog(infra.stream);
    await eventually(async () => (await log.read(conversationId, 0, 100)).length === ids.length, 10_000, 'the messages in the log');
    return log;
  }

  it('goes on by direct gets from the stream leader, every event once and in order, instead of failing the read', async () => {
    const log = await withMessages('r-lost', ['a', 'b', 'c']);
    // As the client fails a fetch whose consumer's node went: heartbeats missed, not a transient error.
    const js = (log as unknown as { js: { consumers: { getConsumerFromInfo: (info: unknown) => { fetch: () => Promise<never> } } } }).js;
    let fetches = 0;
    js.consumers.getConsumerFromInfo = () => ({
      fetch: () => {
        fetches++;
        return Promise.reject(new JetStreamError('heartbeats missed'));
      },
    });
    const events = await log.read('r-lost', 0, 100);
    // The read went through the failing reader (not around it), and on from there.
    expect(fetches).toBe(1);
    expect(events.map((entry) => (entry.event as { messageId: string }).messageId)).toEqual(['a', 'b', 'c']);
  });

  it('gives up a fetch that no event and no expiry end (its connection dropped mid-fetch), and goes on by direct gets', async () => {
    const log = await withMessages('r-stuck', ['a', 'b']);
    // As the client leaves a fetch when its connection drops: no event, no expiry, no error, until it is closed.
    let closed = 0;
    const js = (log as unknown as { js: { consumers: { getConsumerFromInfo: (info: unknown) => unknown } } }).js;
    js.consumers.getConsumerFromInfo = () => ({
      fetch: async () => {
        let end!: () => void;
        const ended = new Promise<void>((resolve) => (end = resolve));
        return {
          close: () => {
            closed++;
            end();
            return Promise.resolve();
          },
          [Symbol.asyncIterator]: () => ({ next: async () => (await ended, { done: true as const, value: undefined }) }),
        };
      },
    });
    const events = await log.read('r-stuck', 0, 100);
    expect(closed).toBe(1);
    expect(events.map((entry) => (entry.event as { messageId: string }).messageId)).toEqual(['a', 'b']);
  }, 45_000);

  it('reads again from the last batch handed over when a delivery never came (sent into a connection that dropped), instead of going on past the gap', async () => {
    const log = await withMessages('r-gap', ['a', 'b', 'c']);
    const stored = await log.read('r-gap', 0, 100);
    // The reader delivers a (delivery 1), then c (delivery 3): b went into the old connection.
    const delivery = (index: number, deliverySequence: number) => ({
      seq: stored[index]!.seq,
      data: new TextEncoder().encode(JSON.stringify({ prev: stored[index]!.prev, event: stored[index]!.event })),
      info: { deliverySequence, pending: 2 - index, timestampNanos: Date.now() * 1_000_000 },
    });
    const js = (log as unknown as { js: { consumers: { getConsumerFromInfo: (info: unknown) => unknown } } }).js;
    let fetches = 0;
    js.consumers.getConsumerFromInfo = () => ({
      fetch: async () => {
        fetches++;
        return {
          close: () => Promise.resolve(),
          [Symbol.asyncIterator]: async function* () {
            yield delivery(0, 1);
            yield delivery(2, 3);
          },
        };
      },
    });
    const events = await log.read('r-gap', 0, 100);
    expect(fetches).toBeGreaterThanOrEqual(1);
    expect(events.map((entry) => (entry.event as { messageId: string }).messageId)).toEqual(['a', 'b', 'c']);
  });
});

