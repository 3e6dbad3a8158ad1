import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { LogStream, LogTail, type TailMessage } from '@seqline/streams';
import { createTestSettings, eventually } from '@seqline/testing';

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
