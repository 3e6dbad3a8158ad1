import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { SeqlineAgent, type AnswerStream } from '@seqline/agent';
import { DEFAULT_AGENT_GROUP } from '@seqline/streams';
import type { Prompt } from '@seqline/protocol';
import { createConversation, eventually, http, useSeqline, WsDevice } from '@seqline/testing';
import { WriteRouter } from '../apps/server/src/ingest/write-router.service.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What the agent SDK does with a prompt whose handler fails, and how many handlers it runs at once. */
describe('prompt handling in the agent SDK', () => {
  const seqline = useSeqline();
  let agent: SeqlineAgent;
  /** Each test's handler, by conversation. */
  const handlers = new Map<string, (prompt: Prompt) => Promise<void>>();
  const row = (conversationId: string, id: string) => seqline.server.infra.prisma.message.findUnique({ where: { conversationId_id: { conversationId, id } } });
  const post = (conversationId: string, messageId: string) => http(seqline.server.url, 'POST', `/v1/conversations/${conversationId}/messages`, { messageId, text: 'hello' });
  const answerWith = async (prompt: Prompt, text: string): Promise<void> => {
    const answer = agent.startMessage(prompt.conversationId, { messageId: `${prompt.messageId}-answer` });
    answer.append(text);
    await answer.complete();
  };
  /** Prompts delivered to an agent of the group and neither acked nor handed back yet. */
  const pendingPrompts = async (): Promise<number> => {
    const jsm = await jetstreamManager(seqline.server.infra.stream.nc);
    return (await jsm.consumers.info(seqline.settings.log.stream, DEFAULT_AGENT_GROUP)).num_ack_pending;
  };
  /** The agent that took `q-answer` over finishes it after the first one's `mine `: the text is whole. */
  const finishTakenOver = async (conversationId: string, taken: AnswerStream): Promise<void> => {
    handlers.set(conversationId, async () => undefined);
    taken.append('theirs');
    await taken.complete();
    await eventually(async () => (await row(conversationId, 'q-answer'))?.status === 'complete', 10_000, 'the answer completed');
    expect((await row(conversationId, 'q-answer'))?.text).toBe('mine theirs');
  };

  beforeAll(async () => {
    agent = await seqline.agent('prompt-bot');
    // Not an async function: a handler may throw before it returns a promise.
    await agent.onPrompt((prompt) => handlers.get(prompt.conversationId)!(prompt), { concurrency: 2 });
  });

  it('reports each failure to pull prompts and waits longer after each while they go on (a stream that does not exist)', async () => {
    const lost = await SeqlineAgent.connect({ agentId: 'lost-bot', servers: seqline.settings.nats.url, prefix: seqline.settings.log.prefix, stream: 'NO_SUCH_STREAM' });
    const failedAt: number[] = [];
    const started = Date.now();
    await lost.onPrompt(async () => undefined, { onError: () => void failedAt.push(Date.now() - started) });
    await sleep(4_000);
    await lost.close();
    // 0.5 s, 1 s, 2 s apart: three or four in 4 s, not eight.
    expect(failedAt.length).toBeGreaterThanOrEqual(3);
    expect(failedAt.length).toBeLessThanOrEqual(4);
    expect(failedAt[2]! - failedAt[1]!).toBeGreaterThan(failedAt[1]! - failedAt[0]!);
  });

  it('redelivers the prompt of a handler that threw or rejected, until it succeeds', async () => {
    await createConversation(seqline.server.url, 'c-retry');
    let deliveries = 0;
    handlers.set('c-retry', (prompt) => {
      deliveries++;
      if (deliveries === 1) throw new Error('model not loaded');
      if (deliveries === 2) return Promise.reject(new Error('model timed out'));
      return answerWith(prompt, 'third time lucky');
    });
    await post('c-retry', 'q');
    await eventually(async () => (await row('c-retry', 'q-answer'))?.status === 'complete', 15_000, 'the answer completed');
    expect((await row('c-retry', 'q-answer'))?.text).toBe('third time lucky');
    await sleep(2_000);
    expect(deliveries).toBe(3);
  });

  it('is done with a prompt delivered again whose answer was finished already, when its handler rejects with the abort', async () => {
    await createConversation(seqline.server.url, 'c-finished');
    // The agent before (the same agent id, another process) finished the answer and died before it acked the prompt.
    const before = await seqline.agent('prompt-bot');
    const finished = before.startMessage('c-finished', { messageId: 'q-answer' });
    finished.append('done before');
    await finished.complete();
    await before.close();
    let deliveries = 0;
    handlers.set('c-finished', async (prompt) => {
      deliveries++;
      const answer = agent.startMessage(prompt.conversationId, { messageId: `${prompt.messageId}-answer` });
      await answer.ready;
      // A model call given `signal` rejects with its reason once it aborts.
      await new Promise((_resolve, reject) => {
        if (answer.signal.aborted) reject(answer.signal.reason as Error);
        answer.signal.addEventListener('abort', () => reject(answer.signal.reason as Error));
      });
    });
    await post('c-finished', 'q');
    await eventually(() => deliveries === 1, 10_000, 'the prompt delivered');
    await sleep(2_500);
    expect(deliveries).toBe(1);
    expect(await pendingPrompts()).toBe(0);
    expect((await row('c-finished', 'q-answer'))?.text).toBe('done before');
  });

  it('goes on reading (replies, prompts, cancels) after a notice on the cancel subject that is not JSON', async () => {
    await createConversation(seqline.server.url, 'c-bad-notice');
    const { nc, subjects } = seqline.server.infra.stream;
    nc.publish(subjects.cancel('c-bad-notice'), '{oops');
    await nc.flush();
    handlers.set('c-bad-notice', (prompt) => answerWith(prompt, 'still reading'));
    await post('c-bad-notice', 'q');
    await eventually(async () => (await row('c-bad-notice', 'q-answer'))?.status === 'complete', 10_000, 'the answer completed');
    expect((await row('c-bad-notice', 'q-answer'))?.text).toBe('still reading');
  });

  it('is done with the prompt of an answer a device cancelled', async () => {
    await createConversation(seqline.server.url, 'c-cancelled');
    const device = new WsDevice(seqline.server.url, 'c-cancelled');
    await device.connect();
    let deliveries = 0;
    handlers.set('c-cancelled', async (prompt) => {
      deliveries++;
      const answer = agent.startMessage(prompt.conversationId, { messageId: `${prompt.messageId}-answer` });
      answer.append('partial ');
      await eventually(() => answer.signal.aborted, 15_000, 'the cancel reached the agent');
      // Refused MESSAGE_FINISHED: the handler rejects, as most handlers written without a cancel check would.
      await answer.complete();
    });
    await post('c-cancelled', 'q');
    await device.until(() => device.text('q-answer') === 'partial ');
    device.send({ type: 'cancel', ref: 'stop', conversationId: 'c-cancelled', messageId: 'q-answer' });
    await device.until(() => device.messages.get('q-answer')?.status === 'aborted');
    await sleep(2_500);
    expect(deliveries).toBe(1);
    expect(device.text('q-answer')).toBe('partial ');
    await device.close();
  });

  it('gives a prompt up after 10 deliveries, failing the answer its last delivery left open with the handler\'s error', async () => {
    await createConversation(seqline.server.url, 'c-poison');
    let deliveries = 0;
    handlers.set('c-poison', async (prompt) => {
      deliveries++;
      const answer = agent.startMessage(prompt.conversationId, { messageId: `${prompt.messageId}-answer` });
      await answer.ready;
      answer.append(`try ${deliveries} `);
      throw new Error('this prompt always breaks the model');
    });
    await post('c-poison', 'q');
    await eventually(() => deliveries === 10, 20_000, 'ten deliveries');
    // Not left streaming until the agent lease (60 s): no delivery comes to end it.
    await eventually(async () => (await row('c-poison', 'q-answer'))?.status === 'failed', 5_000, 'the answer failed');
    expect(await row('c-poison', 'q-answer')).toMatchObject({ status: 'failed', error: 'its prompt handler failed: this prompt always breaks the model' });
    await sleep(2_000);
    expect(deliveries).toBe(10);
  });

  it('runs at most `concurrency` handlers at once, and forgets answers once they are over', async () => {
    await createConversation(seqline.server.url, 'c-many');
    let running = 0;
    let most = 0;
    handlers.set('c-many', async (prompt) => {
      running++;
      most = Math.max(most, running);
      // Held until a second one runs too (or 3 s pass), then long enough for a third to be handed over if the limit let it.
      for (const deadline = Date.now() + 3_000; running < 2 && Date.now() < deadline; ) await sleep(10);
      await sleep(400);
      running--;
      await answerWith(prompt, `answer to ${prompt.messageId}`);
    });
    for (const id of ['q1', 'q2', 'q3', 'q4']) await post('c-many', id);
    await eventually(async () => (await seqline.server.infra.prisma.message.count({ where: { conversationId: 'c-many', id: { endsWith: '-answer' }, status: 'complete' } })) === 4, 15_000, 'four answers');
    expect(most).toBe(2);
    for (const id of ['q1', 'q2', 'q3', 'q4']) expect((await row('c-many', `${id}-answer`))?.text).toBe(`answer to ${id}`);
    expect(agent.activeAnswers).toBe(0);
  });

  it("leaves the prompt of an answer another agent took over to that agent, though the handler returns on `signal` as the README's does", async () => {
    await createConversation(seqline.server.url, 'c-taken');
    const pendingBefore = await pendingPrompts();
    let takenOver!: () => void;
    const whenTakenOver = new Promise<void>((resolve) => (takenOver = resolve));
    let returned = false;
    handlers.set('c-taken', async (prompt) => {
      const answer = agent.startMessage(prompt.conversationId, { messageId: `${prompt.messageId}-answer` });
      await answer.ready;
      answer.append('mine ');
      await whenTakenOver;
      for (const token of ['more ', 'text ']) {
        if (answer.signal.aborted) break;
        answer.append(token);
        await sleep(300);
      }
      returned = true;
      if (answer.signal.aborted) return;
      await answer.complete();
    });
    await post('c-taken', 'q');
    await eventually(async () => (await row('c-taken', 'q-answer'))?.text === 'mine ', 10_000, 'the first part');
    // Another agent, given the prompt after this one seemed to stall, takes the answer over.
    const other = await seqline.agent('prompt-bot');
    const taken = other.startMessage('c-taken', { messageId: 'q-answer' });
    expect(await taken.ready).toMatchObject({ status: 'streaming', text: 'mine ' });
    takenOver();
    await eventually(() => returned, 10_000, 'the fenced handler returned');
    await sleep(500);
    // Not acknowledged: the prompt is the other agent's now, and comes back if that one fails.
    expect(await pendingPrompts()).toBe(pendingBefore + 1);
    await finishTakenOver('c-taken', taken);
  });

  it('leaves the prompt of an answer another agent took over to that agent, also when the handler throws the error its aborted model call rejects with', async () => {
    await createConversation(seqline.server.url, 'c-taken-throws');
    const pendingBefore = await pendingPrompts();
    let takenOver!: () => void;
    const whenTakenOver = new Promise<void>((resolve) => (takenOver = resolve));
    let deliveries = 0;
    let threw = false;
    handlers.set('c-taken-throws', async (prompt) => {
      deliveries++;
      const answer = agent.startMessage(prompt.conversationId, { messageId: `${prompt.messageId}-answer` });
      await answer.ready;
      answer.append('mine ');
      await whenTakenOver;
      // A model call given `signal`: it rejects once the answer stops, here on the next append being fenced.
      const modelCall = new Promise<void>((_, reject) => answer.signal.addEventListener('abort', () => reject(Object.assign(new Error('This operation was aborted'), { name: 'AbortError' }))));
      answer.append('more ');
      try {
        await modelCall;
      } finally {
        threw = true;
      }
    });
    await post('c-taken-throws', 'q');
    await eventually(async () => (await row('c-taken-throws', 'q-answer'))?.text === 'mine ', 10_000, 'the first part');
    const other = await seqline.agent('prompt-bot');
    const taken = other.startMessage('c-taken-throws', { messageId: 'q-answer' });
    await taken.ready;
    takenOver();
    await eventually(() => threw, 10_000, 'the fenced handler threw');
    await sleep(2_000);
    // Neither acked nor handed back: no second delivery takes the answer from its new holder.
    expect({ deliveries, pending: await pendingPrompts() }).toEqual({ deliveries: 1, pending: pendingBefore + 1 });
    await finishTakenOver('c-taken-throws', taken);
  });

  it('fails an answer its handler returned without ending, saying so, rather than leaving it streaming until the agent lease', async () => {
    await createConversation(seqline.server.url, 'c-unended');
    handlers.set('c-unended', async (prompt) => {
      const answer = agent.startMessage(prompt.conversationId, { messageId: `${prompt.messageId}-answer` });
      answer.append('partial ');
    });
    await post('c-unended', 'q');
    await eventually(async () => (await row('c-unended', 'q-answer'))?.status === 'failed', 5_000, 'the answer failed');
    expect(await row('c-unended', 'q-answer')).toMatchObject({ status: 'failed', text: 'partial ', error: 'its prompt handler ended without ending its answer' });
  });

  it("fails an answer refused for what it held once, with the handler's own message when the handler failed it", async () => {
    await createConversation(seqline.server.url, 'c-own-fail');
    const finishedRefusals = async (): Promise<number> => {
      const metrics = await (await fetch(`${seqline.server.url}/metrics`)).text();
      return Number(/^seqline_commands_refused_total\{code="MESSAGE_FINISHED"\} (\d+)$/m.exec(metrics)?.[1] ?? 0);
    };
    const before = await finishedRefusals();
    handlers.set('c-own-fail', async (prompt) => {
      const answer = agent.startMessage(prompt.conversationId, { messageId: `${prompt.messageId}-answer` });
      answer.append('x'.repeat(256 * 1024 + 1));
      // Refused MESSAGE_TOO_LARGE: the handler says what went wrong in its own words, without waiting.
      await answer.complete().catch(() => void answer.fail('the model wrote too much').catch(() => undefined));
    });
    await post('c-own-fail', 'q');
    await eventually(async () => (await row('c-own-fail', 'q-answer'))?.status === 'failed', 30_000, 'the answer failed');
    expect((await row('c-own-fail', 'q-answer'))?.error).toBe('the model wrote too much');
    await sleep(1_000);
    // One fail sent, not a second one refused because the first had ended the answer.
    expect((await finishedRefusals()) - before).toBe(0);
  });

  it('settles a prompt only once the end its handler did not wait for is answered: refused, the prompt is refused and the answer failed with why', async () => {
    await createConversation(seqline.server.url, 'c-unawaited');
    const pendingBefore = await pendingPrompts();
    let deliveries = 0;
    handlers.set('c-unawaited', async (prompt) => {
      deliveries++;
      const answer = agent.startMessage(prompt.conversationId, { messageId: `${prompt.messageId}-answer` });
      // Longer than the service takes for one message (256 KiB of characters).
      answer.append('x'.repeat(256 * 1024 + 1));
      void answer.complete().catch(() => undefined);
    });
    await post('c-unawaited', 'q');
    // Seventeen appends of 16 KiB, the refusal and the fail: seconds when the fault suite loads the machine beside this one.
    await eventually(async () => (await row('c-unawaited', 'q-answer'))?.status === 'failed', 30_000, 'the answer failed');
    expect((await row('c-unawaited', 'q-answer'))?.error).toBe('message q-answer would exceed 262144 characters');
    await sleep(1_500);
    expect({ deliveries, pending: await pendingPrompts() }).toEqual({ deliveries: 1, pending: pendingBefore });
  });

  it('passes over a prompt that is not JSON without losing a handler to it', async () => {
    await createConversation(seqline.server.url, 'c-garbled');
    const js = jetstream(seqline.server.infra.stream.nc);
    // Written by hand, not by the service: as many as the agent has handlers.
    for (let i = 0; i < 2; i++) await js.publish(`${seqline.settings.log.prefix}.prompt.c-garbled`, 'not json {', { msgID: `garbled-${i}` });
    handlers.set('c-garbled', (prompt) => answerWith(prompt, 'still answering'));
    await post('c-garbled', 'q');
    await eventually(async () => (await row('c-garbled', 'q-answer'))?.status === 'complete', 15_000, 'the answer completed');
  });
});

describe('a post retried after the duplicate window', () => {
  const seqline = useSeqline({ LOG_DUPLICATE_WINDOW: '1s' });
  /** The prompts the agent was handed, by conversation. One agent for the suite: a second one could take the other's prompts. */
  const prompts = new Map<string, string[]>();
  const handed = (conversationId: string): string[] => prompts.get(conversationId) ?? [];

  beforeAll(async () => {
    const agent = await seqline.agent('once-bot');
    await agent.onPrompt(async (prompt) => {
      prompts.set(prompt.conversationId, [...handed(prompt.conversationId), prompt.messageId]);
      const answer = agent.startMessage(prompt.conversationId, { messageId: `${prompt.messageId}-answer` });
      answer.append('hello');
      await answer.complete();
    });
  });

  it('hands agents the prompt once, so the answer is not generated twice', async () => {
    await createConversation(seqline.server.url, 'c-late');
    const post = () => http(seqline.server.url, 'POST', '/v1/conversations/c-late/messages', { messageId: 'q', text: 'hello' });
    const first = await post();
    await eventually(() => handed('c-late').length === 1, 15_000, 'the prompt reached the agent');
    // A retry within the window, and one from after it (a phone that lost the reply and came back later).
    const soon = await post();
    await sleep(1_500);
    const late = await post();
    expect([first.status, soon.status, late.status]).toEqual([202, 202, 202]);
    await sleep(2_000);
    expect(handed('c-late')).toEqual(['q']);
  });

  it('hands the prompt over on a late retry when the first request wrote the message but failed before handing it over', async () => {
    await createConversation(seqline.server.url, 'c-unsent');
    // What a first request leaves when NATS went away (or its instance died) between the two steps: the message, no prompt.
    await seqline.server.app.get(WriteRouter).write('c-unsent', { type: 'message.post', messageId: 'q', author: { role: 'user', id: 'u' }, text: 'hello' });
    await sleep(1_500);
    const post = () => http(seqline.server.url, 'POST', '/v1/conversations/c-unsent/messages', { messageId: 'q', text: 'hello', authorId: 'u' });
    expect((await post()).status).toBe(202);
    await eventually(() => handed('c-unsent').length === 1, 15_000, 'the prompt reached the agent');
    // Retried again later still: the prompt is in the log now, so it is not handed over twice.
    await sleep(1_500);
    expect((await post()).status).toBe(202);
    await sleep(2_000);
    expect(handed('c-unsent')).toEqual(['q']);
  });
});

describe('prompts waiting for a free handler', () => {
  // A short ack wait, so a prompt pulled ahead of a free handler would be redelivered within the test.
  const seqline = useSeqline({ PROMPT_ACK_WAIT: '2s' });

  it('are pulled only when a handler is free, so none is redelivered while the busy one works', async () => {
    const agent = await seqline.agent('one-at-a-time');
    const handled: string[] = [];
    await agent.onPrompt(
      async (prompt) => {
        handled.push(prompt.conversationId);
        // Longer than two ack waits: a prompt held meanwhile without in-progress acks is redelivered.
        await sleep(4_500);
        const answer = agent.startMessage(prompt.conversationId, { messageId: `${prompt.messageId}-answer` });
        answer.append(`answer to ${prompt.conversationId}`);
        await answer.complete();
      },
      { concurrency: 2 },
    );
    const ids = ['c-wait-1', 'c-wait-2', 'c-wait-3', 'c-wait-4', 'c-wait-5', 'c-wait-6'];
    for (const id of ids) {
      await createConversation(seqline.server.url, id);
      expect((await http(seqline.server.url, 'POST', `/v1/conversations/${id}/messages`, { messageId: 'q', text: 'hello' })).status).toBe(202);
    }
    await eventually(() => handled.length >= ids.length, 30_000, 'every prompt handled');
    await sleep(5_000);
    expect([...handled].sort()).toEqual(ids);
    for (const id of ids) {
      const messages = await http<{ items: { id: string; status: string; text: string }[] }>(seqline.server.url, 'GET', `/v1/conversations/${id}/messages`);
      expect(messages.body.items.map(({ id: messageId, status, text }) => ({ messageId, status, text }))).toEqual([
        { messageId: 'q', status: 'complete', text: 'hello' },
        { messageId: 'q-answer', status: 'complete', text: `answer to ${id}` },
      ]);
    }
  }, 60_000);

  it('close() with an answer in flight fails its commands at once instead of retrying them', async () => {
    await createConversation(seqline.server.url, 'c-closing');
    const agent = await seqline.agent('closing');
    const answer = agent.startMessage('c-closing', { messageId: 'a' });
    await answer.ready;
    // Twice at once, as SIGINT and SIGTERM together call it: one close, not a second drain that throws.
    await Promise.all([agent.close(), agent.close()]);
    await agent.close();
    const started = Date.now();
    answer.append('too late');
    await expect(answer.complete()).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

describe('a prompt handler that stalls', () => {
  // Its own service: no other agent of the default group may take these prompts.
  const seqline = useSeqline({ PROMPT_ACK_WAIT: '2s' });

  it('gives up a handler that stalls: its answer aborts, its prompt is redelivered and its answer taken over, its slot serves the next prompt', async () => {
    const agent = await seqline.agent('stalling');
    const deliveries: string[] = [];
    let stalled: AbortSignal | undefined;
    let wakeUp!: () => void;
    const woken = new Promise<void>((resolve) => (wakeUp = resolve));
    const late: Promise<string>[] = [];
    await agent.onPrompt(
      async (prompt) => {
        deliveries.push(prompt.conversationId);
        const answer = agent.startMessage(prompt.conversationId, { messageId: `${prompt.messageId}-answer` });
        const { text } = await answer.ready;
        if (prompt.conversationId === 'c-stuck' && !stalled) {
          stalled = answer.signal;
          answer.append('partial, ');
          // A model call that comes back long after, ignoring the signal.
          await woken;
          answer.append('too late');
          late.push(answer.complete().then(() => 'completed', (error: Error) => error.message));
          late.push(agent.startMessage(prompt.conversationId, { messageId: `${prompt.messageId}-answer` }).ready.then(() => 'started', (error: Error) => error.message));
          return;
        }
        answer.append(text ? 'then done' : `answer to ${prompt.conversationId}`);
        await answer.complete();
      },
      { concurrency: 1, stallMs: 1_500 },
    );
    for (const id of ['c-stuck', 'c-next']) {
      await createConversation(seqline.server.url, id);
      expect((await http(seqline.server.url, 'POST', `/v1/conversations/${id}/messages`, { messageId: 'q', text: 'hello' })).status).toBe(202);
    }
    const answerOf = async (id: string) =>
      (await http<{ items: { id: string; status: string; text: string }[] }>(seqline.server.url, 'GET', `/v1/conversations/${id}/messages`)).body.items.find((item) => item.id === 'q-answer');
    await eventually(async () => (await answerOf('c-stuck'))?.status === 'complete' && (await answerOf('c-next'))?.status === 'complete', 20_000, 'both answered');
    expect(await answerOf('c-stuck')).toMatchObject({ status: 'complete', text: 'partial, then done' });
    expect(await answerOf('c-next')).toMatchObject({ status: 'complete', text: 'answer to c-next' });
    expect((stalled?.reason as Error).message).toBe('its prompt handler made no progress for 1500 ms');
    expect(deliveries.filter((id) => id === 'c-stuck')).toHaveLength(2);
    // What the given-up handler does when it comes back reaches nobody.
    wakeUp();
    await eventually(() => late.length === 2);
    expect(await Promise.all(late)).toEqual(['its prompt handler made no progress for 1500 ms', 'its prompt handler made no progress for 1500 ms']);
    expect(await answerOf('c-stuck')).toMatchObject({ status: 'complete', text: 'partial, then done' });
    await agent.close();
  }, 30_000);

  it('gives up a handler that ended one answer and stalls on the next, where the first end kept the prompt in progress for ever', async () => {
    const agent = await seqline.agent('stalls-on-second');
    const deliveries: string[] = [];
    await agent.onPrompt(
      async (prompt) => {
        if (prompt.conversationId !== 'c-second') return;
        deliveries.push(prompt.messageId);
        const first = agent.startMessage(prompt.conversationId, { messageId: `${prompt.messageId}-first` });
        await first.ready;
        first.append('done');
        await first.complete();
        const second = agent.startMessage(prompt.conversationId, { messageId: `${prompt.messageId}-second` });
        const { text } = await second.ready;
        if (deliveries.length > 1) {
          second.append(text ? 'then finished' : 'whole');
          await second.complete();
          return;
        }
        second.append('begun, ');
        // A model call that never comes back, ignoring the signal.
        await new Promise(() => undefined);
      },
      { concurrency: 1, stallMs: 1_000, group: 'stalls-on-second' },
    );
    await createConversation(seqline.server.url, 'c-second');
    expect((await http(seqline.server.url, 'POST', '/v1/conversations/c-second/messages', { messageId: 'q', text: 'hello' })).status).toBe(202);
    const answerOf = async (id: string) =>
      (await http<{ items: { id: string; status: string; text: string }[] }>(seqline.server.url, 'GET', '/v1/conversations/c-second/messages')).body.items.find((item) => item.id === id);
    await eventually(async () => (await answerOf('q-second'))?.status === 'complete', 15_000, 'the second answer finished by the next delivery');
    expect(deliveries).toEqual(['q', 'q']);
    expect(await answerOf('q-first')).toMatchObject({ status: 'complete', text: 'done' });
    expect(await answerOf('q-second')).toMatchObject({ status: 'complete', text: 'begun, then finished' });
    await agent.close();
  }, 30_000);

  it('settles the prompt of a handler that ended its answer and then hangs, so its slot serves the next prompt', async () => {
    const agent = await seqline.agent('hanging-after');
    const deliveries: string[] = [];
    await agent.onPrompt(
      async (prompt) => {
        deliveries.push(prompt.conversationId);
        const answer = agent.startMessage(prompt.conversationId, { messageId: `${prompt.messageId}-answer` });
        await answer.ready;
        answer.append(`answer to ${prompt.conversationId}`);
        await answer.complete();
        // Cleanup that never returns (a hung call to another service).
        if (prompt.conversationId === 'c-hangs') await new Promise(() => undefined);
      },
      { concurrency: 1, stallMs: 1_000, group: 'hanging-after' },
    );
    for (const id of ['c-hangs', 'c-after']) {
      await createConversation(seqline.server.url, id);
      expect((await http(seqline.server.url, 'POST', `/v1/conversations/${id}/messages`, { messageId: 'q', text: 'hello' })).status).toBe(202);
    }
    const answerOf = async (id: string) =>
      (await http<{ items: { id: string; status: string; text: string }[] }>(seqline.server.url, 'GET', `/v1/conversations/${id}/messages`)).body.items.find((item) => item.id === 'q-answer');
    await eventually(async () => (await answerOf('c-after'))?.status === 'complete', 15_000, 'the next prompt answered');
    // Acked, not redelivered: the hung handler's answer was whole.
    await sleep(3_000);
    expect(deliveries.filter((id) => id === 'c-hangs')).toEqual(['c-hangs']);
    expect(await answerOf('c-hangs')).toMatchObject({ status: 'complete', text: 'answer to c-hangs' });
    await agent.close();
  }, 30_000);
});

describe('a prompt ack wait changed while an agent runs', () => {
  const seqline = useSeqline();

  it('is read again, so in-progress acks keep a long answer from being redelivered under the shorter wait', async () => {
    await createConversation(seqline.server.url, 'c-ack-wait');
    const agent = await seqline.agent('patient');
    // Closed whatever happens: the next test shares the consumer, and a leftover agent would take its prompt.
    try {
      const deliveries: string[] = [];
      await agent.onPrompt(async (prompt) => {
        deliveries.push(prompt.messageId);
        // Longer than two of the new ack waits.
        await sleep(5_000);
        const answer = agent.startMessage(prompt.conversationId, { messageId: `${prompt.messageId}-answer` });
        answer.append('slow but once');
        await answer.complete();
      });
      // As a service restarted with PROMPT_ACK_WAIT=2s does to the consumer.
      const jsm = await jetstreamManager(seqline.server.infra.stream.nc);
      await jsm.consumers.update(seqline.settings.log.stream, DEFAULT_AGENT_GROUP, { ack_wait: 2_000_000_000 });
      await sleep(5_500);
      expect((await http(seqline.server.url, 'POST', '/v1/conversations/c-ack-wait/messages', { messageId: 'q', text: 'hello' })).status).toBe(202);
      await eventually(async () => (await http<{ items: { id: string; status: string }[] }>(seqline.server.url, 'GET', '/v1/conversations/c-ack-wait/messages')).body.items.some((item) => item.id === 'q-answer' && item.status === 'complete'), 20_000, 'answered');
      expect(deliveries).toEqual(['q']);
    } finally {
      await agent.close();
    }
  }, 30_000);

  it('acks a prompt in progress at once when the wait becomes shorter, before the shorter wait can run out mid-answer', async () => {
    const jsm = await jetstreamManager(seqline.server.infra.stream.nc);
    await jsm.consumers.update(seqline.settings.log.stream, DEFAULT_AGENT_GROUP, { ack_wait: 60_000_000_000 });
    await createConversation(seqline.server.url, 'c-ack-shorter');
    const agent = await seqline.agent('steady');
    try {
      const deliveries: string[] = [];
      let started!: () => void;
      const whenStarted = new Promise<void>((resolve) => (started = resolve));
      await agent.onPrompt(async (prompt) => {
        deliveries.push(prompt.messageId);
        const answer = agent.startMessage(prompt.conversationId, { messageId: `${prompt.messageId}-answer` });
        answer.append('begun, ');
        started();
        // In-progress acks every 20 s under the 60 s wait: the next one is due after the 12 s wait below runs out.
        await sleep(18_000);
        answer.append('and done');
        await answer.complete();
      });
      // The agent reads the wait again every 5 s while it answers.
      await sleep(5_500);
      expect((await http(seqline.server.url, 'POST', '/v1/conversations/c-ack-shorter/messages', { messageId: 'q', text: 'hello' })).status).toBe(202);
      await whenStarted;
      await jsm.consumers.update(seqline.settings.log.stream, DEFAULT_AGENT_GROUP, { ack_wait: 12_000_000_000 });
      const answer = async () => (await http<{ items: { id: string; status: string; text: string }[] }>(seqline.server.url, 'GET', '/v1/conversations/c-ack-shorter/messages')).body.items.find((item) => item.id === 'q-answer');
      await eventually(async () => (await answer())?.status === 'complete', 30_000, 'answered');
      expect(deliveries).toEqual(['q']);
      expect(await answer()).toMatchObject({ status: 'complete', text: 'begun, and done' });
    } finally {
      await agent.close();
    }
  }, 75_000);
});

describe('an agent closing while it handles a prompt', () => {
  const seqline = useSeqline();

  it('close() hands the prompts it is handling back at once, so another agent answers without waiting out the ack wait', async () => {
    await createConversation(seqline.server.url, 'c-handed-back');
    // The same agent, run twice (as by two replicas): an answer is taken over only by its own agent.
    const leaving = await seqline.agent('relay');
    let started!: () => void;
    const whenStarted = new Promise<void>((resolve) => (started = resolve));
    let stoppedGenerating = false;
    await leaving.onPrompt(async (prompt) => {
      if (prompt.conversationId !== 'c-handed-back') return;
      const answer = leaving.startMessage(prompt.conversationId, { messageId: `${prompt.messageId}-answer` });
      answer.append('half ');
      started();
      while (!answer.signal.aborted) await sleep(50);
      stoppedGenerating = true;
    });
    await http(seqline.server.url, 'POST', '/v1/conversations/c-handed-back/messages', { messageId: 'q', text: 'hello' });
    await whenStarted;
    const staying = await seqline.agent('relay');
    await staying.onPrompt(async (prompt) => {
      // The later tests' prompts are theirs to answer.
      if (prompt.conversationId !== 'c-handed-back') return;
      const answer = staying.startMessage(prompt.conversationId, { messageId: `${prompt.messageId}-answer` });
      const { text } = await answer.ready;
      answer.append(text === '' ? 'whole' : 'rest');
      await answer.complete();
    });
    const closedAt = Date.now();
    await leaving.close();
    await eventually(() => stoppedGenerating, 2_000, "the closed agent's handler saw its answer stop");
    const row = () => seqline.server.infra.prisma.message.findUnique({ where: { conversationId_id: { conversationId: 'c-handed-back', id: 'q-answer' } } });
    await eventually(async () => (await row())?.status === 'complete', 20_000, 'the answer completed by the other agent');
    // Far inside the ack wait (30 s), which a prompt not handed back would wait out.
    expect(Date.now() - closedAt).toBeLessThan(10_000);
    expect((await row())?.text).toMatch(/^(half rest|whole)$/);
  });

  it('close() lets an answer whose end is on its way finish, rather than handing its prompt back with the answer left streaming', async () => {
    await createConversation(seqline.server.url, 'c-ending');
    const leaving = await seqline.agent('closer');
    let ending!: () => void;
    const whenEnding = new Promise<void>((resolve) => (ending = resolve));
    // About 200,000 characters: the complete waits behind a dozen appends when close() comes.
    const tokens = Array.from({ length: 100 }, (_, i) => `${i}:${'x'.repeat(2_000)} `);
    await leaving.onPrompt(
      async (prompt) => {
        if (prompt.conversationId !== 'c-ending') return;
        const answer = leaving.startMessage(prompt.conversationId, { messageId: `${prompt.messageId}-answer` });
        for (const token of tokens) answer.append(token);
        const done = answer.complete();
        ending();
        await done;
      },
      { group: 'ending-close' },
    );
    await http(seqline.server.url, 'POST', '/v1/conversations/c-ending/messages', { messageId: 'q', text: 'hello' });
    await whenEnding;
    await leaving.close();
    const row = () => seqline.server.infra.prisma.message.findUnique({ where: { conversationId_id: { conversationId: 'c-ending', id: 'q-answer' } } });
    // Had the prompt been handed back with its complete unsent, no agent of the group is left to end the answer.
    await eventually(async () => (await row())?.status === 'complete', 10_000, 'the answer completed');
    expect((await row())?.text).toBe(tokens.join(''));
    // Done with, not handed back: nothing waits for an ack, nothing was delivered again.
    const jsm = await jetstreamManager(seqline.server.infra.stream.nc);
    const consumer = await jsm.consumers.info(seqline.settings.log.stream, 'ending-close');
    expect({ pending: consumer.num_ack_pending, redelivered: consumer.num_redelivered }).toEqual({ pending: 0, redelivered: 0 });
  });

  it('close() does not hand back a prompt whose answer another agent took over: a third agent would take it from that one', async () => {
    await createConversation(seqline.server.url, 'c-fenced-close');
    const leaving = await seqline.agent('relay-2');
    let fenced!: () => void;
    const whenFenced = new Promise<void>((resolve) => (fenced = resolve));
    await leaving.onPrompt(async (prompt) => {
      if (prompt.conversationId !== 'c-fenced-close') return;
      const answer = leaving.startMessage(prompt.conversationId, { messageId: `${prompt.messageId}-answer` });
      await answer.ready;
      answer.append('mine ');
      // Goes on generating until its next append is refused FENCED, then hangs: still in progress at close.
      while (!answer.signal.aborted) {
        await sleep(100);
        answer.append('more ');
      }
      fenced();
      await new Promise(() => undefined);
    }, { group: 'fenced-close' });
    await http(seqline.server.url, 'POST', '/v1/conversations/c-fenced-close/messages', { messageId: 'q', text: 'hello' });
    const row = () => seqline.server.infra.prisma.message.findUnique({ where: { conversationId_id: { conversationId: 'c-fenced-close', id: 'q-answer' } } });
    await eventually(async () => (await row())?.text.startsWith('mine ') === true, 10_000, 'the first part');
    const thief = await seqline.agent('relay-2');
    const taken = thief.startMessage('c-fenced-close', { messageId: 'q-answer' });
    await taken.ready;
    await whenFenced;
    const deliveries: string[] = [];
    const third = await seqline.agent('relay-2');
    await third.onPrompt(async (prompt) => {
      if (prompt.conversationId !== 'c-fenced-close') return;
      deliveries.push(prompt.messageId);
      const answer = third.startMessage(prompt.conversationId, { messageId: `${prompt.messageId}-answer` });
      await answer.ready;
      await answer.complete();
    }, { group: 'fenced-close' });
    await leaving.close();
    await sleep(3_000);
    expect(deliveries).toEqual([]);
    // The agent that took the answer over finishes it: nobody took it from that one.
    taken.append('theirs');
    await taken.complete();
    await eventually(async () => (await row())?.status === 'complete', 10_000, 'the answer completed');
    expect((await row())?.text).toMatch(/^mine (more )*theirs$/);
  });

  it('close() is done with a prompt whose answer a device cancelled, rather than handing it to another agent', async () => {
    await createConversation(seqline.server.url, 'c-cancelled-close');
    const leaving = await seqline.agent('relay-3');
    let cancelled!: () => void;
    const whenCancelled = new Promise<void>((resolve) => (cancelled = resolve));
    await leaving.onPrompt(async (prompt) => {
      if (prompt.conversationId !== 'c-cancelled-close') return;
      const answer = leaving.startMessage(prompt.conversationId, { messageId: `${prompt.messageId}-answer` });
      await answer.ready;
      answer.append('half ');
      answer.signal.addEventListener('abort', () => cancelled());
      // Still cleaning up when the agent is closed.
      await new Promise(() => undefined);
    }, { group: 'cancelled-close' });
    await http(seqline.server.url, 'POST', '/v1/conversations/c-cancelled-close/messages', { messageId: 'q', text: 'hello' });
    const row = () => seqline.server.infra.prisma.message.findUnique({ where: { conversationId_id: { conversationId: 'c-cancelled-close', id: 'q-answer' } } });
    await eventually(async () => (await row())?.text === 'half ', 10_000, 'the first part');
    const device = new WsDevice(seqline.server.url, 'c-cancelled-close');
    await device.connect();
    device.send({ type: 'cancel', ref: 'stop', conversationId: 'c-cancelled-close', messageId: 'q-answer' });
    await whenCancelled;
    await device.close();
    const deliveries: string[] = [];
    const other = await seqline.agent('relay-3');
    await other.onPrompt(async (prompt) => {
      if (prompt.conversationId === 'c-cancelled-close') deliveries.push(prompt.messageId);
    }, { group: 'cancelled-close' });
    await leaving.close();
    await sleep(3_000);
    expect(deliveries).toEqual([]);
    expect(await row()).toMatchObject({ status: 'aborted', text: 'half ' });
  });
});
