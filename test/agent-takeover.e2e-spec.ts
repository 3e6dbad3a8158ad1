import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { AgentCommand, AgentReply } from '@seqline/protocol';
import { createConversation, eventually, http, useSeqline, WsDevice } from '@seqline/testing';

/** Restarted agents, zombies and retries, sent as raw NATS requests the way any agent would send them. */
describe('answers that change producer', () => {
  const seqline = useSeqline();
  let nc: NatsConnection;
  const request = async (conversationId: string, command: AgentCommand): Promise<AgentReply> => {
    const reply = await nc.request(`${seqline.settings.log.prefix}.agent.${conversationId}`, JSON.stringify(command), { timeout: 5_000 });
    return reply.json<AgentReply>();
  };
  const code = (reply: AgentReply): string => (reply.ok ? 'ok' : reply.error.code);
  const row = (conversationId: string, id: string) => seqline.server.infra.prisma.message.findUnique({ where: { conversationId_id: { conversationId, id } } });
  const logEvents = async (conversationId: string) =>
    (await http<{ items: { event: { type: string } }[] }>(seqline.server.url, 'GET', `/v1/conversations/${conversationId}/events?limit=500`)).body.items.map((item) => item.event.type);

  beforeAll(async () => {
    nc = await connect({ servers: seqline.settings.nats.url });
  });
  afterAll(async () => nc.close());

  it('refuses a part sent again with other text, and acknowledges it with the same text', async () => {
    await createConversation(seqline.server.url, 'c-part');
    expect(await request('c-part', { type: 'message.start', messageId: 'a', agentId: 'bot', producerId: 'p1' })).toMatchObject({ ok: true, duplicate: false });
    expect(await request('c-part', { type: 'message.append', messageId: 'a', part: 1, delta: 'Hello', epoch: 1 })).toMatchObject({ ok: true, duplicate: false });
    expect(await request('c-part', { type: 'message.append', messageId: 'a', part: 2, delta: ' world', epoch: 1 })).toMatchObject({ ok: true, duplicate: false });

    // A regenerated answer restarting at part 1 is not a duplicate: it is refused and changes nothing.
    const conflict = await request('c-part', { type: 'message.append', messageId: 'a', part: 1, delta: 'XXXXX', epoch: 1 });
    expect(conflict).toMatchObject({ ok: false, error: { code: 'PART_CONFLICT' } });
    expect(await request('c-part', { type: 'message.append', messageId: 'a', part: 2, delta: ' world!', epoch: 1 })).toMatchObject({ ok: false, error: { code: 'PART_CONFLICT' } });
    // The same content again is a retry.
    expect(await request('c-part', { type: 'message.append', messageId: 'a', part: 1, delta: 'Hello', epoch: 1 })).toMatchObject({ ok: true, duplicate: true });
    expect(await request('c-part', { type: 'message.complete', messageId: 'a', epoch: 1 })).toMatchObject({ ok: true, duplicate: false });

    expect(await logEvents('c-part')).toEqual(['message.created', 'message.appended', 'message.appended', 'message.completed']);
    await eventually(async () => (await row('c-part', 'a'))?.status === 'complete');
    expect(await row('c-part', 'a')).toMatchObject({ text: 'Hello world', parts: 2, partLengths: [5, 6] });
  });

  it('hands a redelivered answer to a new producer with its state, and fences the old one', async () => {
    await createConversation(seqline.server.url, 'c-take');
    const device = new WsDevice(seqline.server.url, 'c-take');
    await device.connect();
    await request('c-take', { type: 'message.start', messageId: 'ans', agentId: 'bot', producerId: 'first' });
    await request('c-take', { type: 'message.append', messageId: 'ans', part: 1, delta: 'The answer', epoch: 1 });

    // The prompt went to another process of the same agent: it takes over and learns where the answer stands.
    const takeover = await request('c-take', { type: 'message.start', messageId: 'ans', agentId: 'bot', producerId: 'second' });
    expect(takeover).toMatchObject({ ok: true, duplicate: false, answer: { status: 'streaming', parts: 1, text: 'The answer', producerId: 'second', epoch: 2 } });
    // Its retry of the start is a duplicate with the same state.
    expect(await request('c-take', { type: 'message.start', messageId: 'ans', agentId: 'bot', producerId: 'second' })).toMatchObject({
      ok: true,
      duplicate: true,
      answer: { parts: 1, epoch: 2, producerId: 'second' },
    });

    // The first producer was only slow: whatever it sends now is fenced, with or without its epoch.
    const zombie: AgentCommand[] = [
      { type: 'message.append', messageId: 'ans', part: 2, delta: ' from a zombie', epoch: 1 },
      { type: 'message.append', messageId: 'ans', part: 2, delta: ' from a zombie' },
      { type: 'message.append', messageId: 'ans', part: 1, delta: 'The answer', epoch: 1 },
      { type: 'message.complete', messageId: 'ans', epoch: 1 },
      { type: 'message.fail', messageId: 'ans', error: 'zombie', epoch: 1 },
    ];
    for (const command of zombie) expect({ command, code: code(await request('c-take', command)) }).toEqual({ command, code: 'FENCED' });

    expect(await request('c-take', { type: 'message.append', messageId: 'ans', part: 2, delta: ' is 42.', epoch: 2 })).toMatchObject({ ok: true });
    expect(await request('c-take', { type: 'message.complete', messageId: 'ans', epoch: 2 })).toMatchObject({ ok: true, duplicate: false });
    expect(await request('c-take', { type: 'message.complete', messageId: 'ans', epoch: 2 })).toMatchObject({ ok: true, duplicate: true });
    // The zombie is still fenced after the end.
    expect(code(await request('c-take', { type: 'message.complete', messageId: 'ans', epoch: 1 }))).toBe('FENCED');
    // A start on the finished answer reports it finished and takes nothing over.
    expect(await request('c-take', { type: 'message.start', messageId: 'ans', agentId: 'bot', producerId: 'third' })).toMatchObject({
      ok: true,
      duplicate: true,
      answer: { status: 'complete', parts: 2, text: 'The answer is 42.', epoch: 2 },
    });

    await device.until(() => device.messages.get('ans')?.status === 'complete');
    expect(device.text('ans')).toBe('The answer is 42.');
    expect(device.events.map((event) => event.event.type)).toEqual(['message.created', 'message.appended', 'message.claimed', 'message.appended', 'message.completed']);
    expect(device.violations).toEqual([]);
    await eventually(async () => (await row('c-take', 'ans'))?.status === 'complete');
    expect(await row('c-take', 'ans')).toMatchObject({ text: 'The answer is 42.', parts: 2, producerId: 'second', producerEpoch: 2 });
    await device.close();
  });

  it('keys each end by its command: a complete that lost to a cancel is refused, not a duplicate', async () => {
    await createConversation(seqline.server.url, 'c-end');
    await request('c-end', { type: 'message.start', messageId: 'e', agentId: 'bot' });
    const device = new WsDevice(seqline.server.url, 'c-end');
    await device.connect();
    device.send({ type: 'cancel', ref: 'stop', conversationId: 'c-end', messageId: 'e' });
    await device.until(() => device.frames.some((frame) => frame.type === 'ack' && frame.ref === 'stop'));
    expect(await request('c-end', { type: 'message.complete', messageId: 'e' })).toMatchObject({ ok: false, error: { code: 'MESSAGE_FINISHED' } });
    expect(await request('c-end', { type: 'message.fail', messageId: 'e', error: 'x' })).toMatchObject({ ok: false, error: { code: 'MESSAGE_FINISHED' } });
    // Another agent re-using the message id is refused.
    expect(await request('c-end', { type: 'message.start', messageId: 'e', agentId: 'other-bot' })).toMatchObject({ ok: false, error: { code: 'MESSAGE_EXISTS' } });
    expect(await logEvents('c-end')).toEqual(['message.created', 'message.aborted']);
    await device.close();
  });

  it('delivers prompts posted before any agent connected, and the SDK continues a half-written answer', async () => {
    await createConversation(seqline.server.url, 'c-early');
    // The service created the prompt consumer at start; no agent exists yet.
    await http(seqline.server.url, 'POST', '/v1/conversations/c-early/messages', { messageId: 'q', text: 'early' });
    // An earlier agent wrote part of the answer and died.
    await request('c-early', { type: 'message.start', messageId: 'q-answer', agentId: 'sdk-bot', producerId: 'dead' });
    await request('c-early', { type: 'message.append', messageId: 'q-answer', part: 1, delta: 'Half ', epoch: 1 });

    const agent = await seqline.agent('sdk-bot');
    const seen: string[] = [];
    await agent.onPrompt(async (prompt) => {
      const answer = agent.startMessage(prompt.conversationId, { messageId: `${prompt.messageId}-answer` });
      const state = await answer.ready;
      seen.push(`${prompt.messageId}:${state.parts}:${state.text}`);
      // The model continues from the text so far.
      answer.append(state.text === 'Half ' ? 'and the rest.' : 'a fresh answer.');
      await answer.complete();
    });
    await eventually(async () => (await row('c-early', 'q-answer'))?.status === 'complete', 20_000);
    expect(seen).toEqual(['q:1:Half ']);
    expect(await row('c-early', 'q-answer')).toMatchObject({ text: 'Half and the rest.', parts: 2, producerEpoch: 2 });
    // The dead producer cannot add to it.
    expect(code(await request('c-early', { type: 'message.append', messageId: 'q-answer', part: 3, delta: '!', epoch: 1 }))).toBe('FENCED');
  });
});
