import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { AgentCommand, AgentReply } from '@seqline/protocol';
import { parseCursor } from '@seqline/protocol';
import { createConversation, eventually, useSeqline } from '@seqline/testing';

/** The service ends abandoned answers, judging silence on the log: a lagging Postgres row does not end a live answer. */
describe('abandoned answers', () => {
  const seqline = useSeqline({ AGENT_LEASE: '3s' });
  let nc: NatsConnection;
  const request = async (command: AgentCommand): Promise<AgentReply> =>
    (await nc.request(`${seqline.settings.log.prefix}.agent.c-reap`, JSON.stringify(command), { timeout: 5_000 })).json<AgentReply>();
  const row = (id: string) => seqline.server.infra.prisma.message.findUnique({ where: { conversationId_id: { conversationId: 'c-reap', id } } });

  beforeAll(async () => {
    nc = await connect({ servers: seqline.settings.nats.url });
    await createConversation(seqline.server.url, 'c-reap');
  });
  afterAll(async () => nc.close());

  it('keeps an answer that is live in the log while its Postgres row looks silent, and ends one that is silent', async () => {
    await request({ type: 'message.start', messageId: 'live', agentId: 'bot' });
    await request({ type: 'message.start', messageId: 'silent', agentId: 'bot' });
    // Postgres lagging: the live answer's row keeps an old updated_at, for four agent leases.
    let lagging = true;
    const lag = (async () => {
      while (lagging) {
        await seqline.server.infra.prisma.$executeRaw`UPDATE messages SET updated_at = now() - interval '1 hour' WHERE conversation_id = 'c-reap' AND id = 'live'`;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    let text = '';
    for (let part = 1; part <= 48; part++) {
      const reply = await request({ type: 'message.append', messageId: 'live', part, delta: `t${part} ` });
      expect({ part, reply }).toMatchObject({ part, reply: { ok: true } });
      text += `t${part} `;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    lagging = false;
    await lag;
    expect(await request({ type: 'message.complete', messageId: 'live' })).toMatchObject({ ok: true, duplicate: false });
    await eventually(async () => (await row('live'))?.status === 'complete');
    expect(await row('live')).toMatchObject({ status: 'complete', text });
    // The answer nobody wrote to was ended.
    expect(await row('silent')).toMatchObject({ status: 'failed', error: expect.stringMatching(/^agent lease expired/) });
    // An agent that missed the notice learns how the answer ended from its next command's refusal.
    expect(await request({ type: 'message.append', messageId: 'silent', part: 1, delta: 'late' })).toEqual({
      ok: false,
      error: { code: 'MESSAGE_FINISHED', message: 'message silent is already failed', messageStatus: 'failed' },
    });
  });

  it("tells the agent of an answer it ended, so a model that hangs is stopped rather than left generating", async () => {
    const agent = await seqline.agent('slow-bot');
    const answer = agent.startMessage('c-reap', { messageId: 'hung' });
    await answer.ready;
    answer.append('thinking ');
    // The model hangs: nothing is appended for longer than the agent lease (3 s).
    await eventually(() => answer.signal.aborted, 15_000, "the agent's answer aborted");
    expect((answer.signal.reason as Error).message).toBe('agent lease expired: no event for 3000 ms');
    // Failed for every device, not cancelled by one: an AI SDK agent's publishToSeqline resolves 'failed'.
    expect(answer.endedAs).toBe('failed');
    expect(agent.activeAnswers).toBe(0);
    await eventually(async () => (await row('hung'))?.status === 'failed', 5_000, 'the row failed');
    expect(await row('hung')).toMatchObject({ status: 'failed', text: 'thinking ' });
  });

  it('reads a cancel notice without a status, from an older service, by its reason', async () => {
    const agent = await seqline.agent('older-service');
    const answers = ['lease', 'device'].map((id) => agent.startMessage('c-reap', { messageId: id }));
    await Promise.all(answers.map((answer) => answer.ready));
    const cancel = `${seqline.settings.log.prefix}.cancel.c-reap`;
    nc.publish(cancel, JSON.stringify({ conversationId: 'c-reap', messageId: 'lease', reason: 'agent lease expired: no event for 60000 ms' }));
    nc.publish(cancel, JSON.stringify({ conversationId: 'c-reap', messageId: 'device' }));
    await eventually(() => answers.every((answer) => answer.signal.aborted), 5_000, 'both answers aborted');
    expect(answers.map((answer) => [answer.endedAs, (answer.signal.reason as Error).message])).toEqual([
      ['failed', 'agent lease expired: no event for 60000 ms'],
      ['aborted', 'cancelled by a device'],
    ]);
  });

  it('reads from the log the end of an answer that Postgres lacks and no delivery will bring, found by its row looking abandoned', async () => {
    await createConversation(seqline.server.url, 'c-lost');
    const send = async (command: AgentCommand): Promise<AgentReply> =>
      (await nc.request(`${seqline.settings.log.prefix}.agent.c-lost`, JSON.stringify(command), { timeout: 5_000 })).json<AgentReply>();
    await send({ type: 'message.start', messageId: 'a', agentId: 'bot' });
    const appended = await send({ type: 'message.append', messageId: 'a', part: 1, delta: 'done' });
    expect(await send({ type: 'message.complete', messageId: 'a' })).toMatchObject({ ok: true, duplicate: false });
    const lostRow = () => seqline.server.infra.prisma.message.findUnique({ where: { conversationId_id: { conversationId: 'c-lost', id: 'a' } } });
    await eventually(async () => (await lostRow())?.status === 'complete');
    // Past the persister's own look at quiet conversations (3 s after the last event it applied).
    await new Promise((resolve) => setTimeout(resolve, 7_000));
    // Postgres as if the consumer had lost the completion (a replicated consumer can count an event
    // as acknowledged across a leader change): nothing will deliver it again.
    const appendSeq = BigInt(parseCursor((appended as { cursor: string }).cursor)!.seq);
    await seqline.server.infra.prisma.$executeRaw`UPDATE messages SET status = 'streaming', applied_seq = ${appendSeq}, updated_at = now() - interval '1 hour' WHERE conversation_id = 'c-lost' AND id = 'a'`;
    await seqline.server.infra.prisma.$executeRaw`UPDATE conversations SET applied_seq = ${appendSeq} WHERE id = 'c-lost'`;
    // The reaper finds the row silent; the log refuses to end an answer it has complete, and the end is read from there.
    await eventually(async () => (await lostRow())?.status === 'complete', 15_000, 'the row complete again');
    expect(await lostRow()).toMatchObject({ status: 'complete', text: 'done', parts: 1 });
    expect(await send({ type: 'message.complete', messageId: 'a' })).toMatchObject({ ok: true, duplicate: true });
  });
});
