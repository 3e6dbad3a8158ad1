import { connectNats, LogStream } from '@seqline/streams';
import { NatsProcess } from '@seqline/testing';

const options = { prefix: 'epoch', stream: 'EPOCH_LOG', retentionMs: 3_600_000, maxBytes: -1, duplicateWindowMs: 120_000, replicas: 1 };

/** A log's epoch names the log, not the NATS server's last start: cursors stay valid across restarts. */
describe('the log epoch across NATS restarts', () => {
  let nats: NatsProcess;
  beforeAll(async () => {
    nats = await NatsProcess.start();
  });
  afterAll(async () => nats?.destroy());

  const open = async (changed: Partial<typeof options> = {}): Promise<string> => {
    const nc = await connectNats({ url: nats.url, name: 'epoch' });
    try {
      return (await LogStream.open(nc, { ...options, ...changed })).epoch;
    } finally {
      await nc.close();
    }
  };

  it('stays the same when instances start between restarts, also after a setting of the stream changed', async () => {
    const first = await open();
    // nats-server 2.9 reports the time it last started as the stream's creation after a stream
    // update and a restart: an epoch read from it would say the log was recreated.
    for (const changed of [{}, {}, { retentionMs: 7_200_000 }, {}]) {
      await nats.stop();
      await nats.startAgain();
      expect(await open(changed)).toBe(first);
    }
  }, 60_000);
});
