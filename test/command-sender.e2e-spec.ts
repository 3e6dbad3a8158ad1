import { jest } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import type { Msg } from '@nats-io/transport-node';
import { SeqlineError, type AgentCommand, type AgentReply } from '@seqline/protocol';
import { connectNats, type NatsConnection } from '@seqline/streams';
import { AppendPacer } from '../libs/agent/src/append-pacer.js';
import { CommandSender } from '../libs/agent/src/command-sender.js';

const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const decoder = new TextDecoder();
const append: AgentCommand = { type: 'message.append', messageId: 'm', part: 1, delta: 'x' };

/**
 * The agent SDK's batches against a scripted service on the real nats-server: what it sends where,
 * and how it falls back to single commands when a batch is not answered as it should be.
 */
describe('CommandSender batches', () => {
  const prefix = `cs${randomBytes(4).toString('hex')}`;
  let service: NatsConnection;
  let agent: NatsConnection;
  /** What the service received, in order: `<route> <conversations>`. */
  let seen: string[] = [];
  /** The writer single replies name; only `w1` answers batches. */
  let writer = 'w1';
  let batchMode: 'answer' | 'silent' | 'short' | 'first-rate-limited' = 'answer';
  let next = 0;
  const accepted = (): AgentReply => ({ ok: true, cursor: `e-${++next}`, duplicate: false, writer });
  /** Conversations the service answers UNAVAILABLE (it is away for them). */
  const away = new Set<string>();

  beforeAll(async () => {
    service = await connectNats({ url: NATS_URL, name: 'scripted-service' });
    agent = await connectNats({ url: NATS_URL, name: 'agent' });
    const answer = (route: string) => (_error: Error | null, msg: Msg) => {
      const conversation = msg.subject.slice(msg.subject.lastIndexOf('.') + 1);
      seen.push(`${route} ${conversation}`);
      msg.respond(JSON.stringify(away.has(conversation) ? { ok: false, error: { code: 'UNAVAILABLE', message: 'away' } } : accepted()));
    };
    for (let partition = 0; partition < 32; partition++) service.subscribe(`${prefix}.writer.${partition}.*`, { callback: answer('owner') });
    service.subscribe(`${prefix}.agent.*`, { callback: answer('any') });
    service.subscribe(`${prefix}.writer.batch.w1`, {
      callback: (_error, msg) => {
        const lines = decoder.decode(msg.data).trim().split('\n');
        seen.push(`batch ${lines.map((line) => line.slice(0, line.indexOf(' '))).join(',')}`);
        if (batchMode === 'silent') return;
        const replies: AgentReply[] = lines.map(() => accepted());
        if (batchMode === 'short') replies.pop();
        if (batchMode === 'first-rate-limited') replies[0] = { ok: false, error: { code: 'RATE_LIMITED', message: 'slow down' } };
        msg.respond(JSON.stringify({ replies }));
      },
    });
    await service.flush();
  });
  afterAll(async () => {
    await agent.close();
    await service.close();
  });
  beforeEach(() => {
    seen = [];
    writer = 'w1';
    batchMode = 'answer';
  });

  const sender = () => new CommandSender(agent, { prefix, maxInFlight: 64, requestTimeoutMs: 300, retryForMs: 10_000, paceAppends: false, batchCommands: true });
  const ids = ['c-a', 'c-b', 'c-c'];
  /** One command per conversation, one after another: each reply names the writer. */
  const learn = async (commands: CommandSender) => {
    for (const id of ids) await commands.send(id, append);
  };
  const together = (commands: CommandSender) => Promise.all(ids.map((id) => commands.send(id, append)));

  it('stops retrying a command once told to: nothing is sent again after the stop', async () => {
    const commands = sender();
    away.add('c-away');
    try {
      const stop = new AbortController();
      const start: AgentCommand = { type: 'message.start', messageId: 'm', agentId: 'a', producerId: 'p' };
      const sending = commands.send('c-away', start, stop.signal);
      await new Promise((resolve) => setTimeout(resolve, 400));
      const sentBefore = seen.filter((entry) => entry.endsWith('c-away')).length;
      expect(sentBefore).toBeGreaterThan(1);
      stop.abort(new Error('its prompt handler was given up'));
      await expect(sending).rejects.toThrow('its prompt handler was given up');
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      expect(seen.filter((entry) => entry.endsWith('c-away')).length).toBe(sentBefore);
    } finally {
      away.delete('c-away');
      commands.close();
    }
  });

  it('refuses a command the service never answered, after retrying for its time, UNAVAILABLE like any refusal the service makes', async () => {
    // A prefix no instance serves: every request finds no responders.
    const commands = new CommandSender(agent, { prefix: `${prefix}-none`, maxInFlight: 64, requestTimeoutMs: 200, retryForMs: 500, paceAppends: false, batchCommands: true });
    try {
      const sending = commands.send('c-none', append);
      await expect(sending).rejects.toBeInstanceOf(SeqlineError);
      await expect(sending).rejects.toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/^the service did not answer for 500 ms \(/) });
    } finally {
      commands.close();
    }
  });

  it('sends commands ready in one turn to the writer their replies named, as one batch, and each gets its own reply', async () => {
    const commands = sender();
    await learn(commands);
    const before = next;
    const replies = await together(commands);
    expect(seen).toEqual(['owner c-a', 'owner c-b', 'owner c-c', 'batch c-a,c-b,c-c']);
    expect(replies.map((reply) => reply.cursor)).toEqual([`e-${before + 1}`, `e-${before + 2}`, `e-${before + 3}`]);
    // A command alone goes on its own.
    await commands.send('c-a', append);
    expect(seen.at(-1)).toBe('owner c-a');
    commands.close();
  });

  it.each([
    ['the batch reply does not hold one reply per command', () => (batchMode = 'short'), ['batch c-a,c-b,c-c', 'owner c-a', 'owner c-b', 'owner c-c']],
    ['the named writer has gone (no responders)', () => (writer = 'gone'), ['owner c-a', 'owner c-b', 'owner c-c']],
    // As after a timeout on the owner subject: to any instance for a while.
    ['the batch timed out', () => (batchMode = 'silent'), ['batch c-a,c-b,c-c', 'any c-a', 'any c-b', 'any c-c']],
  ])('sends each command on its own when %s', async (_case, arrange, expected) => {
    const commands = sender();
    // learn() sends single commands, which only the writer their replies name changes.
    arrange();
    await learn(commands);
    const replies = await together(commands);
    expect(seen.slice(3)).toEqual(expected);
    expect(replies.every((reply) => reply.ok)).toBe(true);
    commands.close();
  });

  it('retries a command the batch answered with a retryable refusal on its own, and takes the others from the batch', async () => {
    const commands = sender();
    await learn(commands);
    batchMode = 'first-rate-limited';
    const before = next;
    const replies = await together(commands);
    expect(seen.slice(3)).toEqual(['batch c-a,c-b,c-c', 'owner c-a']);
    // The batch's replies were the service's next three; the retry's came after them.
    expect(replies.map((reply) => reply.cursor)).toEqual([`e-${before + 4}`, `e-${before + 2}`, `e-${before + 3}`]);
    commands.close();
  });

  it("counts a batch's round trip once per command for pacing, as the same commands sent alone would count, and not at all when one was refused", async () => {
    const observed = jest.spyOn(AppendPacer.prototype, 'observe');
    const commands = new CommandSender(agent, { prefix, maxInFlight: 64, requestTimeoutMs: 300, retryForMs: 10_000, paceAppends: true, batchCommands: true });
    try {
      await learn(commands);
      observed.mockClear();
      await together(commands);
      expect(seen.at(-1)).toBe('batch c-a,c-b,c-c');
      expect(observed).toHaveBeenCalledTimes(3);
      expect(new Set(observed.mock.calls.map(([roundTripMs]) => roundTripMs)).size).toBe(1);

      // A batch that held a refused command says nothing of the queues; the command retried alone counts once.
      batchMode = 'first-rate-limited';
      observed.mockClear();
      await together(commands);
      expect(seen.slice(-2)).toEqual(['batch c-a,c-b,c-c', 'owner c-a']);
      expect(observed).toHaveBeenCalledTimes(1);
    } finally {
      commands.close();
      observed.mockRestore();
    }
  });
});
