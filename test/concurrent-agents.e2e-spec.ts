import type { SeqlineAgent } from '@seqline/agent';
import { createConversation, eventually, metric, useSeqline, WsDevice } from '@seqline/testing';

describe('two agents streaming into one conversation at once', () => {
  const seqline = useSeqline();

  it('gives both devices the identical order and each answer its exact text', async () => {
    const { server } = seqline;
    await createConversation(server.url, 'c-two');
    const [first, second] = await Promise.all([seqline.agent('alpha'), seqline.agent('beta')]);
    const x = new WsDevice(server.url, 'c-two');
    const y = new WsDevice(server.url, 'c-two');
    await Promise.all([x.connect(), y.connect()]);

    const stream = async (agent: typeof first, messageId: string, word: string): Promise<string> => {
      const answer = agent.startMessage('c-two', { messageId });
      let text = '';
      for (let i = 0; i < 400; i++) {
        const token = ` ${word}${i}`;
        text += token;
        answer.append(token);
        if (i % 20 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
      }
      await answer.complete();
      return text;
    };
    const [alphaText, betaText] = await Promise.all([stream(first, 'from-alpha', 'a'), stream(second, 'from-beta', 'b')]);

    const finished = (device: WsDevice) => () =>
      device.messages.get('from-alpha')?.status === 'complete' && device.messages.get('from-beta')?.status === 'complete';
    await Promise.all([x.until(finished(x)), y.until(finished(y))]);

    expect(x.violations).toEqual([]);
    expect(y.violations).toEqual([]);
    expect(x.events.map((event) => event.cursor)).toEqual(y.events.map((event) => event.cursor));
    expect(x.events.map((event) => event.event)).toEqual(y.events.map((event) => event.event));
    // The two answers really interleaved in the log.
    const owners = x.events.map((event) => event.event.messageId);
    const switches = owners.filter((owner, i) => i > 0 && owner !== owners[i - 1]).length;
    expect(switches).toBeGreaterThan(1);
    for (const device of [x, y]) {
      expect(device.text('from-alpha')).toBe(alphaText);
      expect(device.text('from-beta')).toBe(betaText);
      expect(device.messages.get('from-alpha')?.author).toEqual({ role: 'agent', id: 'alpha' });
    }
    await eventually(async () => {
      const rows = await server.infra.prisma.message.findMany({ where: { conversationId: 'c-two' }, orderBy: { createdSeq: 'asc' } });
      return rows.length === 2 && rows.every((row) => row.status === 'complete') && rows.find((row) => row.id === 'from-alpha')?.text === alphaText && rows.find((row) => row.id === 'from-beta')?.text === betaText;
    });
    await Promise.all([x.close(), y.close()]);
  });
});

describe('one agent streaming many answers at once', () => {
  const seqline = useSeqline();
  const batched = async (): Promise<number> => (await metric(seqline.server.url, 'seqline_agent_commands_total{route="batch"}')) ?? 0;

  /** Twelve answers in twelve conversations, a token to each in turn; returns the texts sent. */
  async function streamAll(agent: SeqlineAgent, ids: string[], messageId: string): Promise<string[]> {
    const answers = ids.map((id) => agent.startMessage(id, { messageId }));
    const texts = ids.map(() => '');
    for (let t = 0; t < 300; t++) {
      answers.forEach((answer, i) => {
        texts[i] += ` ${i}.${t}`;
        answer.append(` ${i}.${t}`);
      });
      if (t % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    }
    await Promise.all(answers.map((answer) => answer.complete()));
    return texts;
  }

  it('sends the appends that are ready together as batches to the instance writing them, and every text is exact', async () => {
    const ids = Array.from({ length: 12 }, (_, i) => `c-many-${i}`);
    const devices = ids.map((id) => new WsDevice(seqline.server.url, id));
    for (const id of ids) await createConversation(seqline.server.url, id);
    await Promise.all(devices.map((device) => device.connect()));

    const before = await batched();
    const texts = await streamAll(await seqline.agent('many'), ids, 'batched');
    for (const [i, device] of devices.entries()) {
      await device.until(() => device.messages.get('batched')?.status === 'complete');
      expect(device.text('batched')).toBe(texts[i]);
      expect(device.violations).toEqual([]);
    }
    // Appends went in batches (the counter counts their commands).
    expect(await batched()).toBeGreaterThan(before + ids.length);

    // Turned off, every command goes on its own.
    const still = await batched();
    const alone = await streamAll(await seqline.agent('one-by-one', { batchCommands: false }), ids, 'alone');
    for (const [i, device] of devices.entries()) {
      await device.until(() => device.messages.get('alone')?.status === 'complete');
      expect(device.text('alone')).toBe(alone[i]);
    }
    expect(await batched()).toBe(still);
    await Promise.all(devices.map((device) => device.close()));
  });
});
