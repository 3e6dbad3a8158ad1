import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { LogStream, LogTail, type TailMessage } from '@seqline/streams';
import { createTestSettings, eventually, TcpProxy } from '@seqline/testing';

const encoder = new TextEncoder();

/**
 * The instance's live feed (`LogTail`) on a stream where JetStream refuses it a consumer: the
 * stream allows one consumer and another holds it. Consumers that cannot be created (a cluster
 * node that does not answer, a replica that is behind) must not hold the feed up while the
 * stream leader can answer.
 */
describe('the live feed without a consumer', () => {
  const settings = createTestSettings();
  const { prefix, stream: name } = settings.log;
  let nc: NatsConnection;
  let jsm: JetStreamManager;

  beforeAll(async () => {
    nc = await connect({ servers: settings.nats.url });
    jsm = await jetstreamManager(nc);
    await jsm.streams.add({
      name,
      subjects: [`${prefix}.log.*`, `${prefix}.prompt.*`, `${prefix}.meta.*`],
      retention: RetentionPolicy.Limits,
      storage: StorageType.Memory,
      max_consumers: 1,
    });
    await jsm.consumers.add(name, { durable_name: 'occupant', ack_policy: AckPolicy.Explicit });
  });
  afterAll(async () => {
    await jsm.streams.delete(name).catch(() => false);
    await nc.close();
  });

  it('hands over every log event from the stream leader, in order and once, then goes on from a consumer once one can be created', async () => {
    const js = jetstream(nc);
    const log = await LogStream.attach(nc, settings.log);
    const received: TailMessage[] = [];
    const consuming: number[] = [];
    const tail = new LogTail(log, { onMessage: (message) => received.push(message), onConsuming: (_consumer, after) => consuming.push(after) });
    await tail.start();
    try {
      const published: Array<{ seq: number; subject: string; text: string }> = [];
      const publish = async (subject: string, text: string) => {
        const ack = await js.publish(subject, encoder.encode(text));
        if (subject.includes('.log.')) published.push({ seq: ack.seq, subject, text });
      };
      await publish(`${prefix}.log.a`, 'a1');
      await publish(`${prefix}.prompt.a`, 'a prompt: not a log event');
      await publish(`${prefix}.log.b`, 'b1');
      await publish(`${prefix}.log.a`, 'a2');
      const seen = () => received.map(({ seq, subject, data }) => ({ seq, subject, text: new TextDecoder().decode(data) }));
      await eventually(() => received.length >= published.length, 10_000, 'the first events handed over').catch(() => undefined);
      expect(seen()).toEqual(published);
      // Still refused a consumer all along.
      expect(consuming).toEqual([]);

      await jsm.consumers.delete(name, 'occupant');
      await eventually(() => consuming.length > 0, 10_000, 'a consumer set up');
      expect(consuming).toEqual([published.at(-1)!.seq]);
      await publish(`${prefix}.log.b`, 'b2');
      await publish(`${prefix}.meta.b`, 'not a log event either');
      await publish(`${prefix}.log.a`, 'a3');
      await eventually(() => received.length >= published.length, 10_000, 'the later events handed over').catch(() => undefined);
      expect(seen()).toEqual(published);
      expect(published.map(({ text }) => text)).toEqual(['a1', 'b1', 'a2', 'b2', 'a3']);
    } finally {
      await tail.stop();
    }
  });
});

/**
 * Deliveries the NATS server sent that never reached the instance (lost on a connection that
 * then died). The live feed has no acknowledgements, so they are never sent again; on a single
 * node there is no replica to compare with, and no later event may come to reveal the jump.
 */
describe('the live feed after deliveries are lost on the way', () => {
  const settings = createTestSettings();
  const { prefix } = settings.log;
  let nc: NatsConnection;

  beforeAll(async () => {
    nc = await connect({ servers: settings.nats.url });
  });
  afterAll(async () => {
    await (await jetstreamManager(nc)).streams.delete(settings.log.stream).catch(() => false);
    await nc.close();
  });

  it('notices from the consumer heartbeats and hands the lost events over, with no later event to reveal them', async () => {
    const proxy = await TcpProxy.start(Number(new URL(settings.nats.url).port));
    const tailNc = await connect({ servers: `127.0.0.1:${proxy.port}`, reconnectTimeWait: 100, maxReconnectAttempts: -1 });
    const log = await LogStream.open(tailNc, settings.log);
    const received: string[] = [];
    const statuses: string[] = [];
    let consumer = '';
    const tail = new LogTail(log, {
      onMessage: ({ data }) => received.push(new TextDecoder().decode(data)),
      onConsuming: (name) => (consumer = name),
      onStatus: ({ type }) => statuses.push(type),
    });
    await tail.start();
    try {
      const js = jetstream(nc);
      const jsm = await jetstreamManager(nc);
      await js.publish(`${prefix}.log.a`, encoder.encode('e1'));
      await eventually(() => received.length === 1, 10_000, 'the first event handed over');

      proxy.swallowReplies(true);
      await js.publish(`${prefix}.log.a`, encoder.encode('e2'));
      await js.publish(`${prefix}.log.b`, encoder.encode('e3'));
      // The server has sent both to the instance's connection, where they are lost.
      await eventually(async () => (await jsm.consumers.info(settings.log.stream, consumer)).delivered.consumer_seq === 3, 5_000, 'both sent');
      proxy.cutAll();
      proxy.swallowReplies(false);

      await eventually(() => received.length >= 3, 10_000, 'the lost events handed over').catch(() => undefined);
      expect(received).toEqual(['e1', 'e2', 'e3']);
      expect(statuses).toContain('deliveries_lost');
    } finally {
      await tail.stop();
      await tailNc.close();
      await proxy.close();
    }
  });
});
