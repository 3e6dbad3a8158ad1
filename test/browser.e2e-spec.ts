import type { SeqlineAgent } from '@seqline/agent';
import type { Message } from '@seqline/protocol';
import { createConversation, launchBrowser, useSeqline, type Browser, type Page } from '@seqline/testing';

declare global {
  interface Window {
    seqlinePane: { subscription: { messages: Message[] } };
  }
}

/** The demo web app, in Debian's Chromium, using the device SDK the way an app developer would. */
describe('demo web app in a real browser', () => {
  const seqline = useSeqline({ SSE_MAX_DURATION: '700ms' });
  let browser: Browser;

  beforeAll(async () => {
    browser = await launchBrowser();
  });
  afterAll(async () => browser?.close());

  /** Streams `count` tokens at about `perSecond`, returning the full text once complete. */
  async function stream(agent: SeqlineAgent, conversationId: string, messageId: string, count: number, perSecond: number): Promise<string> {
    const answer = agent.startMessage(conversationId, { messageId });
    let text = '';
    for (let i = 0; i < count; i++) {
      const token = ` ${messageId}-${i}`;
      text += token;
      answer.append(token);
      if (i % 10 === 9) await new Promise((resolve) => setTimeout(resolve, (10 * 1000) / perSecond));
    }
    await answer.complete();
    return text;
  }

  const paneText = (page: Page, messageId: string) =>
    page.evaluate((id) => window.seqlinePane.subscription.messages.find((m) => m.id === id)?.text ?? '', messageId);
  const waitComplete = (page: Page, messageId: string) =>
    page.waitForFunction((id) => window.seqlinePane.subscription.messages.find((m) => m.id === id)?.status === 'complete', messageId, { timeout: 30_000 });
  const openPane = async (page: Page, conversationId: string, pane: string) => {
    await page.goto(`${seqline.server.url}/pane.html?conversation=${conversationId}&pane=${pane}`);
    await page.waitForSelector('#state[data-state="live"]');
  };

  it('a pane that goes offline mid-answer ends with the agent text', async () => {
    await createConversation(seqline.server.url, 'b-offline');
    const agent = await seqline.agent('browser-offline');
    const page = await browser.newPage();
    await openPane(page, 'b-offline', 'A');
    const states: string[] = [];
    await page.exposeFunction('recordState', (state: string) => states.push(state));
    await page.evaluate(() => {
      const badge = document.querySelector('#state')!;
      new MutationObserver(() => (window as unknown as { recordState(s: string): void }).recordState(badge.textContent!)).observe(badge, { childList: true });
    });
    const streaming = stream(agent, 'b-offline', 'ans', 400, 400);
    await page.waitForFunction(() => (window.seqlinePane.subscription.messages[0]?.text.length ?? 0) > 200);
    await page.check('#offline');
    const textWhileOffline = await paneText(page, 'ans');
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(await paneText(page, 'ans')).toBe(textWhileOffline);
    await page.uncheck('#offline');
    const expected = await streaming;
    await waitComplete(page, 'ans');
    expect(await paneText(page, 'ans')).toBe(expected);
    expect(await page.textContent('li[data-id="ans"] .text')).toBe(expected);
    expect(states).toContain('offline');
    expect(states.at(-1)).toBe('live');
    await page.close();
  });

  it('a page reloaded mid-answer resumes from its stored cursor without fetching the history again', async () => {
    await createConversation(seqline.server.url, 'b-reload');
    const agent = await seqline.agent('browser-reload');
    const page = await browser.newPage();
    await openPane(page, 'b-reload', 'A');
    const streaming = stream(agent, 'b-reload', 'ans', 400, 300);
    await page.waitForFunction(() => (window.seqlinePane.subscription.messages[0]?.text.length ?? 0) > 300);

    const sent: Record<string, unknown>[] = [];
    const received: Record<string, unknown>[] = [];
    page.on('websocket', (socket) => {
      socket.on('framesent', (frame) => sent.push(JSON.parse(String(frame.payload))));
      socket.on('framereceived', (frame) => received.push(JSON.parse(String(frame.payload))));
    });
    await page.click('#reload');
    await page.waitForSelector('#state[data-state="live"]');
    const expected = await streaming;
    await waitComplete(page, 'ans');

    const subscribe = sent.find((frame) => frame.type === 'subscribe')!;
    expect(typeof subscribe.after).toBe('string');
    expect(received.some((frame) => frame.type === 'snapshot')).toBe(false);
    expect(received.find((frame) => frame.type === 'subscribed')).toMatchObject({ cursor: subscribe.after });
    const events = received.filter((frame) => frame.type === 'event');
    expect(events[0]).toMatchObject({ prev: subscribe.after });
    // Only what came after the stored cursor crossed the wire again: not the created event, not the early parts.
    expect(events.some((frame) => (frame.event as { type: string }).type === 'message.created')).toBe(false);
    expect(await paneText(page, 'ans')).toBe(expected);
    await page.close();
  });

  it('a second browser context joining late shows the full history and the live tail', async () => {
    await createConversation(seqline.server.url, 'b-late');
    const agent = await seqline.agent('browser-late');
    const first = await stream(agent, 'b-late', 'first', 100, 2000);
    const streaming = stream(agent, 'b-late', 'second', 300, 300);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const context = await browser.newContext();
    const page = await context.newPage();
    await openPane(page, 'b-late', 'B');
    const second = await streaming;
    await waitComplete(page, 'second');
    expect(await paneText(page, 'first')).toBe(first);
    expect(await paneText(page, 'second')).toBe(second);
    expect(await page.locator('li.message').count()).toBe(2);
    await context.close();
  });

  it("a pane's stop button ends a streaming answer for every device, clicked as slowly as a person clicks", async () => {
    await createConversation(seqline.server.url, 'b-stop');
    const agent = await seqline.agent('browser-stop');
    const page = await browser.newPage();
    const other = await browser.newPage();
    await openPane(page, 'b-stop', 'A');
    await openPane(other, 'b-stop', 'B');
    const answer = agent.startMessage('b-stop', { messageId: 'ans' });
    await answer.ready;
    // Tokens every 10 ms: the pane changes many times while the button is held down.
    const tokens = (async () => {
      for (let i = 0; i < 3_000 && !answer.signal.aborted; i++) {
        answer.append(` t${i}`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();
    await page.waitForFunction(() => (window.seqlinePane.subscription.messages.find((m) => m.id === 'ans')?.text.length ?? 0) > 1_000);
    const box = (await page.locator('li[data-id="ans"] button').boundingBox())!;
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.down();
    await new Promise((resolve) => setTimeout(resolve, 150));
    await page.mouse.up();
    for (const pane of [page, other]) {
      await pane.waitForFunction(() => window.seqlinePane.subscription.messages.find((m) => m.id === 'ans')?.status === 'aborted', undefined, { timeout: 10_000 });
    }
    await tokens;
    expect(await page.locator('li[data-id="ans"] button').isHidden()).toBe(true);
    await page.close();
    await other.close();
  });

  it("the browser's EventSource resumes with Last-Event-ID after the server ends the stream", async () => {
    await createConversation(seqline.server.url, 'b-sse');
    const agent = await seqline.agent('browser-sse');
    const page = await browser.newPage();
    await page.goto(`${seqline.server.url}/pane.html?conversation=b-sse&pane=S`);
    await page.evaluate((url) => {
      const state = { opens: 0, cursors: [] as string[], text: '', complete: false, snapshots: 0 };
      (window as unknown as { sse: typeof state }).sse = state;
      const source = new EventSource(url);
      source.onopen = () => state.opens++;
      source.addEventListener('snapshot', () => state.snapshots++);
      source.onmessage = (message) => {
        const event = JSON.parse(message.data);
        state.cursors.push(message.lastEventId);
        if (event.event.type === 'message.appended') state.text += event.event.delta;
        if (event.event.type === 'message.completed') {
          state.complete = true;
          source.close();
        }
      };
    }, `${seqline.server.url}/v1/conversations/b-sse/stream`);
    await page.waitForFunction(() => (window as unknown as { sse: { opens: number } }).sse.opens === 1);
    const expected = await stream(agent, 'b-sse', 'ans', 600, 300);
    await page.waitForFunction(() => (window as unknown as { sse: { complete: boolean } }).sse.complete, undefined, { timeout: 30_000 });
    const result = await page.evaluate(() => (window as unknown as { sse: { opens: number; cursors: string[]; text: string; snapshots: number } }).sse);
    expect(result.opens).toBeGreaterThan(1);
    expect(result.snapshots).toBe(1);
    expect(new Set(result.cursors).size).toBe(result.cursors.length);
    expect(result.text).toBe(expected);
    await page.close();
  });
});
