import { createConversation, seededRandom, testSeed, useSeqline, WsDevice } from '@seqline/testing';

const SEED = testSeed();
const CONVERSATIONS = ['seam-a', 'seam-b'];
const AGENTS = 3;
const TOKENS = 300;
const DEVICES = 40;

/**
 * Devices join and drop at random moments while several agents write: every join and every
 * resume crosses the seam between what the instance holds in memory, what it reads from the
 * log and what arrives live. A small window makes each of those paths common.
 */
describe(`the seam between catch-up and live, under concurrent writes (TEST_SEED=${SEED})`, () => {
  const seqline = useSeqline({ FEED_WINDOW_EVENTS: '8' });

  it('leaves every device with the exact texts and an unbroken prev chain', async () => {
    const random = seededRandom(SEED);
    const { server } = seqline;
    for (const id of CONVERSATIONS) await createConversation(server.url, id);
    const agents = await Promise.all(Array.from({ length: AGENTS }, (_, i) => seqline.agent(`writer-${i}`)));
    const expected = new Map<string, string>();
    const writing = CONVERSATIONS.flatMap((conversationId) =>
      agents.map(async (agent, a) => {
        const messageId = `answer-${a}`;
        const answer = agent.startMessage(conversationId, { messageId });
        let text = '';
        for (let t = 0; t < TOKENS; t++) {
          const token = ` ${conversationId}/${a}/${t}`;
          text += token;
          answer.append(token);
          await new Promise((resolve) => setTimeout(resolve, 2 + Math.floor(random() * 16)));
        }
        await answer.complete();
        expected.set(`${conversationId}/${messageId}`, text);
      }),
    );

    const devices: WsDevice[] = [];
    const following = Array.from({ length: DEVICES }, async (_, d) => {
      await new Promise((resolve) => setTimeout(resolve, random() * 2_000));
      const device = new WsDevice(server.url, CONVERSATIONS[d % CONVERSATIONS.length]!);
      devices.push(device);
      await device.connect();
      // Drop once or twice and come back from the cursor, sometimes after the window has moved on.
      const drops = 1 + Math.floor(random() * 2);
      for (let i = 0; i < drops; i++) {
        await new Promise((resolve) => setTimeout(resolve, random() * 1_000));
        device.drop();
        await new Promise((resolve) => setTimeout(resolve, random() * 500));
        await device.connect();
      }
    });
    await Promise.all([...writing, ...following]);

    const done = (device: WsDevice) => () => agents.every((_, a) => device.messages.get(`answer-${a}`)?.status === 'complete');
    await Promise.all(devices.map((device) => device.until(done(device), 60_000)));
    for (const device of devices) {
      expect({ device: device.conversationId, violations: device.violations }).toEqual({ device: device.conversationId, violations: [] });
      for (let a = 0; a < AGENTS; a++) expect(device.text(`answer-${a}`)).toBe(expected.get(`${device.conversationId}/answer-${a}`));
    }
    await Promise.all(devices.map((device) => device.close()));
  });
});
