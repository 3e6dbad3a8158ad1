import { createConversation, eventually, metric, useSeqline } from '@seqline/testing';
import WebSocket from 'ws';

const DEVICES = 1_000;
const CONVERSATIONS = 20;

/** How a device leaves: right after its first frame, before any frame, or after following for a moment. */
type Leave = 'after-first-frame' | 'before-any-frame' | 'after-a-moment';

function device(url: string, conversationId: string, leave: Leave): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/ws`);
    let frames = 0;
    socket.on('open', () => {
      socket.send(JSON.stringify({ type: 'subscribe', conversationId }));
      if (leave === 'before-any-frame') socket.terminate();
    });
    socket.on('message', () => {
      frames++;
      if (leave === 'after-first-frame' && frames === 1) socket.terminate();
      if (leave === 'after-a-moment' && frames === 1) setTimeout(() => socket.close(), 20 + Math.random() * 200);
    });
    socket.on('close', () => resolve());
    socket.on('error', reject);
  });
}

describe('subscriptions leave nothing behind', () => {
  const seqline = useSeqline({ FEED_LINGER: '300ms' });

  it(`after ${DEVICES} devices subscribe and leave, JetStream consumers, feeds and subscriptions are back to where they started`, async () => {
    const { server, settings } = seqline;
    const { jsm } = server.infra.stream;
    const consumers = async (): Promise<number> => (await jsm.consumers.list(settings.log.stream).next()).length;
    const ids = Array.from({ length: CONVERSATIONS }, (_, i) => `life-${i}`);
    for (const id of ids) await createConversation(server.url, id);
    const agent = await seqline.agent('lifecycle');
    const baseline = await consumers();

    // Answers stream while devices come and go, so some leave mid catch-up and some mid live.
    const writing = ids.map(async (id) => {
      const answer = agent.startMessage(id, { messageId: 'answer' });
      for (let t = 0; t < 100; t++) {
        answer.append(` ${t}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await answer.complete();
    });
    let peakConsumers = baseline;
    const watching = setInterval(() => void consumers().then((n) => (peakConsumers = Math.max(peakConsumers, n))), 50);
    const leaves: Leave[] = ['after-first-frame', 'before-any-frame', 'after-a-moment'];
    for (let batch = 0; batch < DEVICES; batch += 100) {
      await Promise.all(Array.from({ length: 100 }, (_, i) => device(server.url, ids[(batch + i) % CONVERSATIONS]!, leaves[(batch + i) % leaves.length]!)));
    }
    await Promise.all(writing);
    clearInterval(watching);

    // A snapshot that finds Postgres behind the log reads the rest with a short-lived consumer:
    // at most one per conversation at a time, never one per device.
    expect(peakConsumers).toBeLessThanOrEqual(baseline + CONVERSATIONS);
    await eventually(async () => (await metric(server.url, 'seqline_subscriptions_open')) === 0, 10_000, 'subscriptions closed');
    await eventually(async () => (await metric(server.url, 'seqline_devices_connected')) === 0, 10_000, 'devices gone');
    await eventually(async () => (await metric(server.url, 'seqline_live_feeds')) === 0, 10_000, 'feeds dropped');
    await eventually(async () => (await consumers()) === baseline, 10_000, 'log readers removed');
  });
});
