import { SeqlineChatTransport, publishToSeqline, toUIMessages, type PublishOutcome } from '@seqline/ai-sdk';
import { SeqlineClient } from '@seqline/client';
import type { Message } from '@seqline/protocol';
import { createConversation, eventually, http, metric, useSeqline, type SeqlineContext } from '@seqline/testing';
import { readUIMessageStream, simulateReadableStream, streamText, tool, type UIMessage } from 'ai';
import { MockLanguageModelV4 } from 'ai/test';
import WebSocket from 'ws';
import { z } from 'zod';

type StreamPart = Awaited<ReturnType<MockLanguageModelV4['doStream']>>['stream'] extends ReadableStream<infer Part> ? Part : never;

const words = Array.from({ length: 60 }, (_, i) => (i === 0 ? `w${i}` : ` w${i}`));
const answerText = words.join('');
const usage = { inputTokens: { total: 3, noCache: 3, cacheRead: 0, cacheWrite: 0 }, outputTokens: { total: 60, text: 60, reasoning: 2 } };

/** What the AI SDK's mock model streams: reasoning, a streamed tool call, then the text. */
function modelParts(): StreamPart[] {
  return [
    { type: 'stream-start', warnings: [] },
    { type: 'reasoning-start', id: 'r' },
    { type: 'reasoning-delta', id: 'r', delta: 'Let me ' },
    { type: 'reasoning-delta', id: 'r', delta: 'check the weather.' },
    { type: 'reasoning-end', id: 'r' },
    { type: 'tool-input-start', id: 'call-1', toolName: 'weather' },
    { type: 'tool-input-delta', id: 'call-1', delta: '{"city":' },
    { type: 'tool-input-delta', id: 'call-1', delta: '"Paris"}' },
    { type: 'tool-input-end', id: 'call-1' },
    { type: 'tool-call', toolCallId: 'call-1', toolName: 'weather', input: '{"city":"Paris"}' },
    { type: 'text-start', id: 't' },
    ...words.map((delta): StreamPart => ({ type: 'text-delta', id: 't', delta })),
    { type: 'text-end', id: 't' },
    { type: 'finish', finishReason: { unified: 'stop', raw: 'stop' }, usage },
  ];
}

const weather = tool({
  inputSchema: z.object({ city: z.string() }),
  execute: async ({ city }) => ({ city, celsius: 21 }),
});

/** The blocks every reader must end with. */
const expectedBlocks = [
  { type: 'reasoning', id: '0-r', text: 'Let me check the weather.' },
  { type: 'tool', id: 'call-1', toolName: 'weather', input: '{"city":"Paris"}', output: '{"city":"Paris","celsius":21}' },
  { type: 'text', id: '0-t', text: answerText },
];

/** Device SDK clients on the suite's server, closed after the suite. */
function useDevices(seqline: SeqlineContext): () => SeqlineClient {
  const clients: SeqlineClient[] = [];
  afterAll(async () => Promise.all(clients.map((client) => client.close())));
  return () => {
    const client = new SeqlineClient({ url: seqline.server.url, WebSocket });
    clients.push(client);
    return client;
  };
}

/** The AI SDK agent helper against a real server: the mock model of `ai/test`, streamed through Seqline. */
describe('AI SDK agent helper', () => {
  const seqline = useSeqline();
  const device = useDevices(seqline);

  it('fails a chat on a conversation the server refuses, naming why, instead of showing it empty or waiting for ever', async () => {
    const transport = new SeqlineChatTransport({ client: device() });
    await expect(transport.history('never-created')).rejects.toMatchObject({
      name: 'SeqlineTransportError',
      code: 'SUBSCRIPTION_REFUSED',
      serverCode: 'UNKNOWN_CONVERSATION',
      message: 'conversation never-created cannot be followed: conversation never-created does not exist',
    });
  });

  it('publishes text, reasoning and a tool call; devices, the transport and the history end with the exact parts', async () => {
    await createConversation(seqline.server.url, 'ai-parts');
    const agent = await seqline.agent('ai-parts-agent');
    const outcomes: PublishOutcome[] = [];
    await agent.onPrompt(async (prompt) => {
      const model = new MockLanguageModelV4({ doStream: async () => ({ stream: simulateReadableStream({ chunks: modelParts(), chunkDelayInMs: 3 }) }) });
      const answer = agent.startMessage(prompt.conversationId, { messageId: `${prompt.messageId}-answer` });
      outcomes.push(await publishToSeqline(answer, (abortSignal) => streamText({ model, prompt: prompt.text, tools: { weather }, abortSignal })));
    }, { group: 'ai-parts' });

    // A second device that only watches.
    const watcher = device().subscribe('ai-parts');
    // The sending device, through the AI SDK transport; the UI message is assembled by the AI SDK itself.
    const transport = new SeqlineChatTransport({ client: device() });
    const user: UIMessage = { id: 'q1', role: 'user', parts: [{ type: 'text', text: 'Weather in Paris?' }] };
    const stream = await transport.sendMessages({ trigger: 'submit-message', chatId: 'ai-parts', messageId: undefined, messages: [user], abortSignal: undefined });
    let assembled: UIMessage | undefined;
    for await (const message of readUIMessageStream({ stream })) assembled = message;

    await eventually(() => outcomes.length > 0);
    expect(outcomes).toEqual(['complete']);
    expect(assembled).toMatchObject({
      id: 'q1-answer',
      role: 'assistant',
      metadata: { status: 'complete' },
      parts: [
        { type: 'step-start' },
        { type: 'reasoning', text: 'Let me check the weather.', state: 'done' },
        { type: 'tool-weather', toolCallId: 'call-1', state: 'output-available', input: { city: 'Paris' }, output: { city: 'Paris', celsius: 21 } },
        { type: 'text', text: answerText, state: 'done' },
      ],
    });
    expect(assembled!.parts).toHaveLength(4);

    await eventually(() => watcher.messages.find((m) => m.id === 'q1-answer')?.status === 'complete');
    const seen = watcher.messages.find((m) => m.id === 'q1-answer')!;
    expect(seen.blocks).toEqual(expectedBlocks);
    expect(seen.text).toBe(answerText);
    expect(toUIMessages([seen])[0]!.parts).toEqual([
      { type: 'step-start' },
      { type: 'reasoning', text: 'Let me check the weather.', state: 'done' },
      { type: 'tool-weather', toolCallId: 'call-1', state: 'output-available', input: { city: 'Paris' }, output: { city: 'Paris', celsius: 21 } },
      { type: 'text', text: answerText, state: 'done' },
    ]);

    // Postgres: one row for the answer, its blocks folded back whole (they were written in many flushes).
    await eventually(async () => {
      const { body } = await http<{ items: Message[] }>(seqline.server.url, 'GET', '/v1/conversations/ai-parts/messages');
      return body.items.find((m) => m.id === 'q1-answer')?.status === 'complete';
    });
    const { body } = await http<{ items: Message[] }>(seqline.server.url, 'GET', '/v1/conversations/ai-parts/messages');
    expect(body.items.map((m) => m.id)).toEqual(['q1', 'q1-answer']);
    expect(body.items[1]).toMatchObject({ text: answerText, blocks: expectedBlocks });
    expect(body.items[0]).not.toHaveProperty('blocks');
  });

  it('hands the Seqline cancel to the model call: the model stops and the answer ends aborted', async () => {
    await createConversation(seqline.server.url, 'ai-cancel');
    const agent = await seqline.agent('ai-cancel-agent');
    let modelSignal: AbortSignal | undefined;
    let emitted = 0;
    const model = new MockLanguageModelV4({
      doStream: async ({ abortSignal }) => {
        modelSignal = abortSignal;
        let i = 0;
        return {
          stream: new ReadableStream<StreamPart>({
            async pull(controller) {
              if (i === 0) controller.enqueue({ type: 'text-start', id: 't' });
              await new Promise((resolve) => setTimeout(resolve, 10));
              emitted++;
              controller.enqueue({ type: 'text-delta', id: 't', delta: ` t${i++}` });
            },
          }),
        };
      },
    });
    const answer = agent.startMessage('ai-cancel', { messageId: 'slow' });
    const outcome = publishToSeqline(answer, (abortSignal) => streamText({ model, prompt: 'go on forever', abortSignal }));

    const client = device();
    const conversation = client.subscribe('ai-cancel');
    await eventually(() => (conversation.messages.find((m) => m.id === 'slow')?.text.length ?? 0) > 20);
    await client.cancel('ai-cancel', 'slow');

    expect(await outcome).toBe('aborted');
    expect(modelSignal?.aborted).toBe(true);
    const emittedAtAbort = emitted;
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(emitted).toBeLessThanOrEqual(emittedAtAbort + 1);
    await eventually(() => conversation.messages.find((m) => m.id === 'slow')?.status === 'aborted');
  });

  it('fails the answer with the model error', async () => {
    await createConversation(seqline.server.url, 'ai-error');
    const agent = await seqline.agent('ai-error-agent');
    const model = new MockLanguageModelV4({
      doStream: async () => ({
        stream: simulateReadableStream<StreamPart>({
          chunks: [
            { type: 'text-start', id: 't' },
            { type: 'text-delta', id: 't', delta: 'Half an answer' },
            { type: 'error', error: new Error('the provider is overloaded') },
          ],
        }),
      }),
    });
    const answer = agent.startMessage('ai-error', { messageId: 'broken' });
    expect(await publishToSeqline(answer, streamText({ model, prompt: 'x', abortSignal: answer.signal }))).toBe('failed');
    const conversation = device().subscribe('ai-error');
    await eventually(() => conversation.messages.find((m) => m.id === 'broken')?.status === 'failed');
    expect(conversation.messages.find((m) => m.id === 'broken')).toMatchObject({ text: 'Half an answer', error: 'the provider is overloaded' });
  });

  it('fails, at once, an answer the service refuses for its size, rather than report it cancelled and leave it streaming', async () => {
    await createConversation(seqline.server.url, 'ai-runaway');
    const agent = await seqline.agent('ai-runaway-agent');
    // A model that does not stop: past the service's 262,144 characters a message may hold.
    async function* runaway() {
      for (let i = 0; i < 40; i++) {
        yield 'x'.repeat(10_000);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }
    const answer = agent.startMessage('ai-runaway', { messageId: 'long' });
    const started = Date.now();
    expect(await publishToSeqline(answer, runaway())).toBe('failed');
    const conversation = device().subscribe('ai-runaway');
    await eventually(() => conversation.messages.find((m) => m.id === 'long')?.status === 'failed', 10_000, 'the answer failed for every device');
    // Long before the agent lease (60 s) would have ended it.
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(conversation.messages.find((m) => m.id === 'long')?.error).toMatch(/262144|262,144/);
  });

  it('publishes plain text chunks (any AsyncIterable<string>) as before blocks existed', async () => {
    await createConversation(seqline.server.url, 'ai-plain');
    const agent = await seqline.agent('ai-plain-agent');
    async function* tokens() {
      for (const word of words) yield word;
    }
    const answer = agent.startMessage('ai-plain', { messageId: 'plain' });
    expect(await publishToSeqline(answer, tokens())).toBe('complete');
    const conversation = device().subscribe('ai-plain');
    await eventually(() => conversation.messages.find((m) => m.id === 'plain')?.status === 'complete');
    const message = conversation.messages.find((m) => m.id === 'plain')!;
    expect(message.text).toBe(answerText);
    expect(message).not.toHaveProperty('blocks');
  });
});

/** A page that visits many chats, one after another, through one client. */
describe('AI SDK chat transport over many chats', () => {
  const seqline = useSeqline();
  const device = useDevices(seqline);

  it('lets a conversation go once its history is read, its answer streamed and its follower stopped, so a page visiting many chats holds none of them', async () => {
    const agent = await seqline.agent('ai-visits-agent');
    await agent.onPrompt(async (prompt) => {
      const answer = agent.startMessage(prompt.conversationId, { messageId: `${prompt.messageId}-answer` });
      await publishToSeqline(answer, (async function* () {
        yield 'visited';
      })());
    }, { group: 'ai-visits' });
    const open = async () => (await metric(seqline.server.url, 'seqline_subscriptions_open')) ?? 0;
    const transport = new SeqlineChatTransport({ client: device() });
    const before = await open();
    // More chats than a socket may follow at once (32).
    for (let i = 0; i < 33; i++) {
      const chatId = `ai-visit-${i}`;
      await createConversation(seqline.server.url, chatId);
      expect(await transport.history(chatId)).toEqual([]);
      const stopFollowing = transport.follow(chatId, () => undefined);
      const user: UIMessage = { id: 'q', role: 'user', parts: [{ type: 'text', text: 'hi' }] };
      const stream = await transport.sendMessages({ trigger: 'submit-message', chatId, messageId: undefined, messages: [user], abortSignal: undefined });
      let assembled: UIMessage | undefined;
      for await (const message of readUIMessageStream({ stream })) assembled = message;
      expect(assembled?.parts).toEqual([{ type: 'step-start' }, { type: 'text', text: 'visited', state: 'done' }]);
      stopFollowing();
      // Under the server's 5 posts a second per device.
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    await eventually(async () => (await open()) === before, 5_000, 'every chat let go');
  });
});
