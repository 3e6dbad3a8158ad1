import { answerPrompt } from '../apps/ai-sdk-agent/src/answer-prompt.js';
import { answerWords, createScriptedModel } from '../apps/ai-sdk-agent/src/scripted-model.js';
import { createConversation, eventually, launchBrowser, TcpProxy, useSeqline, type Browser, type Page } from '@seqline/testing';

interface ChatSnapshot {
  status: string;
  messages: { id: string; role: string; metadata?: { status?: string }; parts: { type: string; text?: string }[] }[];
}

declare global {
  interface Window {
    aiSdkChat?: ChatSnapshot;
  }
}

/** At 25 words a second: over 5 s of answer left after a reload at word 20, on a slow machine too. */
const WORDS = 160;

/** The example React page (useChat + the Seqline transport) in Chromium, against a real server and the example agent. */
describe('useChat with the Seqline transport in a real browser', () => {
  const seqline = useSeqline();
  const { model, runs } = createScriptedModel({ words: WORDS, wordsPerSecond: 25 });
  let browser: Browser;

  /** A prompt with this text is held by the agent until the test lets it go, so a page can act before its answer starts. */
  const HELD = 'Wait until I say so';
  let releaseHeld: (() => void) | undefined;

  beforeAll(async () => {
    browser = await launchBrowser();
    const agent = await seqline.agent('ai-sdk-example');
    await agent.onPrompt(async (prompt) => {
      if (prompt.text === HELD) await new Promise<void>((release) => (releaseHeld = release));
      void (await answerPrompt(agent, prompt, model));
    });
  });
  afterAll(async () => browser?.close());

  /** A device of its own (separate storage), showing the conversation. */
  async function openChat(conversationId: string, baseUrl = seqline.server.url): Promise<Page> {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${baseUrl}/ai-sdk/?conversation=${conversationId}`);
    await page.waitForSelector('#prompt');
    return page;
  }
  const chat = (page: Page) => page.evaluate(() => window.aiSdkChat);
  /** The text of the chat's last assistant message, joined from its text parts. */
  const answerOf = (snapshot: ChatSnapshot | undefined) => {
    const answer = snapshot?.messages.filter((m) => m.role === 'assistant').at(-1);
    return { text: answer?.parts.filter((p) => p.type === 'text').map((p) => p.text).join('') ?? '', status: answer?.metadata?.status, parts: answer?.parts.map((p) => p.type) ?? [] };
  };
  async function ask(page: Page, text: string): Promise<void> {
    await page.fill('#prompt', text);
    await page.click('#send');
  }
  /** Polls the page until its answer ends, recording every text it showed on the way. */
  async function followAnswer(page: Page, until: (status: string | undefined) => boolean): Promise<string[]> {
    const seen: string[] = [];
    await eventually(async () => {
      const answer = answerOf(await chat(page));
      if (seen.at(-1) !== answer.text) seen.push(answer.text);
      return until(answer.status);
    }, 30_000, 'the answer to end');
    return seen;
  }
  const expectedAnswer = () => answerWords(WORDS).join(' ');

  it('a page reloaded mid-answer continues the answer exactly, with no text twice', async () => {
    await createConversation(seqline.server.url, 'ai-reload');
    const page = await openChat('ai-reload');
    const prompt = 'Why does a reload not lose the answer?';
    await ask(page, prompt);
    await eventually(async () => answerOf(await chat(page)).text.split(' ').length > 20, 20_000, 'part of the answer');
    const run = runs.at(-1)!;
    const wordsAtReload = run.emittedWords;

    const sent: Record<string, unknown>[] = [];
    const received: Record<string, unknown>[] = [];
    page.on('websocket', (socket) => {
      socket.on('framesent', (frame) => sent.push(JSON.parse(String(frame.payload))));
      socket.on('framereceived', (frame) => received.push(JSON.parse(String(frame.payload))));
    });
    await page.reload();
    await page.waitForSelector('#prompt');
    const seen = await followAnswer(page, (status) => status === 'complete');

    // The device resumed from the cursor it stored before the reload: no snapshot, and only later events crossed the network.
    const subscribe = sent.find((frame) => frame.type === 'subscribe')!;
    expect(typeof subscribe.after).toBe('string');
    expect(received.some((frame) => frame.type === 'snapshot')).toBe(false);
    expect(received.filter((frame) => frame.type === 'event').some((frame) => (frame.event as { type: string }).type === 'message.created')).toBe(false);

    const expected = expectedAnswer();
    expect(wordsAtReload).toBeLessThan(WORDS - 20); // it really was mid-answer
    expect(answerOf(await chat(page))).toEqual({ text: expected, status: 'complete', parts: ['step-start', 'reasoning', 'tool-lookup', 'step-start', 'text'] });
    // Every state the page showed after the reload was a prefix of the answer: nothing was shown twice.
    for (const text of seen) expect(expected.startsWith(text)).toBe(true);
    // It went on live after the reload rather than appearing whole at the end.
    expect(seen.filter((text) => text.length > 0 && text.length < expected.length).length).toBeGreaterThan(2);
    expect(run.aborted).toBe(false);
    expect((await chat(page))!.messages.map((m) => m.role)).toEqual(['user', 'assistant']);
    await page.context().close();
  });

  it('a second page on the same conversation shows the same answer live', async () => {
    await createConversation(seqline.server.url, 'ai-two');
    const first = await openChat('ai-two');
    const second = await openChat('ai-two');
    const prompt = 'Can another device follow along?';
    await ask(first, prompt);
    const [seenFirst, seenSecond] = await Promise.all([followAnswer(first, (s) => s === 'complete'), followAnswer(second, (s) => s === 'complete')]);

    const expected = expectedAnswer();
    expect(answerOf(await chat(first)).text).toBe(expected);
    expect(answerOf(await chat(second))).toEqual({ text: expected, status: 'complete', parts: ['step-start', 'reasoning', 'tool-lookup', 'step-start', 'text'] });
    // The second page got the prompt posted elsewhere, and the answer as it streamed.
    expect((await chat(second))!.messages.map((m) => m.role)).toEqual(['user', 'assistant']);
    expect(seenSecond.filter((text) => text.length > 0 && text.length < expected.length).length).toBeGreaterThan(2);
    for (const text of [...seenFirst, ...seenSecond]) expect(expected.startsWith(text)).toBe(true);
    await first.context().close();
    await second.context().close();
  });

  it('stop() ends the answer aborted on both pages and the agent stops generating', async () => {
    await createConversation(seqline.server.url, 'ai-stop');
    const first = await openChat('ai-stop');
    const second = await openChat('ai-stop');
    await ask(first, 'Tell me something long');
    await eventually(async () => answerOf(await chat(second)).text.split(' ').length > 10, 20_000, 'the second page to show the answer');
    const run = runs.at(-1)!;
    await first.click('#stop');

    await eventually(async () => answerOf(await chat(first)).status === 'aborted' && answerOf(await chat(second)).status === 'aborted', 15_000, 'both pages to show the answer aborted');
    await eventually(() => run.ended, 5_000, 'the model call to end');
    expect(run.aborted).toBe(true);
    const emitted = run.emittedWords;
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(run.emittedWords).toBe(emitted);
    expect(emitted).toBeLessThan(WORDS);
    // Both pages end with the same text, which is what was written before the cancel.
    await eventually(async () => answerOf(await chat(first)).text === answerOf(await chat(second)).text, 5_000, 'both pages to agree');
    expect(await first.locator('li[data-role="assistant"]').getAttribute('data-status')).toBe('aborted');
    expect(await second.locator('li[data-role="assistant"]').getAttribute('data-status')).toBe('aborted');
    await first.context().close();
    await second.context().close();
  });

  it('stop() pressed before the answer starts cancels the answer as soon as it starts', async () => {
    await createConversation(seqline.server.url, 'ai-early-stop');
    const page = await openChat('ai-early-stop');
    const runsBefore = runs.length;
    await ask(page, HELD);
    await eventually(() => releaseHeld !== undefined, 20_000, 'the agent to receive the prompt');
    await page.click('#stop');
    await eventually(async () => (await chat(page))?.status === 'ready', 5_000, 'the page to stop waiting');
    releaseHeld!();
    releaseHeld = undefined;

    const answerStatus = async () => (await (await fetch(`${seqline.server.url}/v1/conversations/ai-early-stop/messages`)).json()) as { items: { author: { role: string }; status: string }[] };
    await eventually(async () => (await answerStatus()).items.some((item) => item.author.role === 'agent' && item.status === 'aborted'), 15_000, 'the answer to be aborted');
    await eventually(() => runs.length > runsBefore && runs.at(-1)!.ended, 10_000, 'the model call to end');
    const run = runs.at(-1)!;
    expect(run.aborted).toBe(true);
    expect(run.emittedWords).toBeLessThan(WORDS);
    await page.context().close();
  });

  it('losing the network or closing the tab mid-answer only disconnects: the answer goes on', async () => {
    await createConversation(seqline.server.url, 'ai-leave');
    // The page reaches the server through a proxy that drops its connections, as a flaky network does.
    const proxy = await TcpProxy.start(Number(new URL(seqline.server.url).port));
    const page = await openChat('ai-leave', proxy.url);
    await ask(page, 'What happens when I go offline?');
    await eventually(async () => answerOf(await chat(page)).text.split(' ').length > 10, 20_000, 'part of the answer');
    const offlineRun = runs.at(-1)!;
    let reconnects = 0;
    page.on('websocket', () => reconnects++);
    proxy.storm(100, 400);
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    proxy.calm();
    await followAnswer(page, (status) => status === 'complete');
    expect(proxy.cuts).toBeGreaterThan(0);
    expect(reconnects).toBeGreaterThan(0); // the socket really dropped and the device came back
    expect(answerOf(await chat(page)).text).toBe(expectedAnswer());
    expect(offlineRun.aborted).toBe(false);

    await ask(page, 'And when I close the tab?');
    await eventually(async () => answerOf(await chat(page)).text.split(' ').length > 10, 20_000, 'part of the second answer');
    const closedRun = runs.at(-1)!;
    await page.context().close();
    await eventually(() => closedRun.ended, 15_000, 'the model to finish');
    expect(closedRun.aborted).toBe(false);
    expect(closedRun.emittedWords).toBe(WORDS);
    // Another device opened once the agent has completed the answer (the model finishing comes
    // just before) finds both answers complete.
    const answerStatuses = async () => ((await (await fetch(`${seqline.server.url}/v1/conversations/ai-leave/messages`)).json()) as { items: { status: string }[] }).items.map((item) => item.status);
    await eventually(async () => (await answerStatuses()).join() === 'complete,complete,complete,complete', 10_000, 'the answer completed');
    const later = await openChat('ai-leave');
    await eventually(async () => (await chat(later))?.messages.length === 4, 10_000, 'the history');
    const statuses = (await chat(later))!.messages.map((m) => `${m.role}:${m.metadata?.status}`);
    expect(statuses).toEqual(['user:complete', 'assistant:complete', 'user:complete', 'assistant:complete']);
    expect(answerOf(await chat(later)).text).toBe(expectedAnswer());
    await later.context().close();
    await proxy.close();
  });
});

