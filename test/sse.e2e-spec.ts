import { applyEvent, type ConversationEvent, type Message } from '@seqline/protocol';
import { createConversation, SseStream, useSeqline, type SseFrame } from '@seqline/testing';
import { connect as tcpConnect } from 'node:net';

/** Reads an SSE response until `stop` says so, then drops the connection (a dropped network). */
async function readSse(url: string, headers: Record<string, string>, stop: (frames: SseFrame[]) => boolean): Promise<SseStream> {
  const stream = await SseStream.open(url, headers);
  try {
    await stream.until(() => stop(stream.frames), 20_000);
  } finally {
    stream.close();
  }
  return stream;
}

describe('SSE stream', () => {
  const seqline = useSeqline();

  it('resumes exactly from Last-Event-ID', async () => {
    const { server } = seqline;
    await createConversation(server.url, 'c-sse');
    const agent = await seqline.agent('sse-writer');
    const answer = agent.startMessage('c-sse', { messageId: 'ans' });
    const tokens = Array.from({ length: 600 }, (_, i) => ` s${i}`);
    const url = `${server.url}/v1/conversations/c-sse/stream`;
    // The reader is in (its snapshot read) before the answer streams, and drops after three
    // events, mid-answer: the second half waits for that.
    const first = await SseStream.open(url, {});
    await first.until(() => first.frames.length > 0, 20_000);
    let firstRead!: () => void;
    const firstDone = new Promise<void>((resolve) => (firstRead = resolve));
    const streaming = (async () => {
      for (const [i, token] of tokens.entries()) {
        if (i === 300) await firstDone;
        answer.append(token);
        if (i % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 10));
      }
      await answer.complete();
    })();
    try {
      await first.until(() => first.frames.filter((frame) => frame.event === undefined).length >= 3, 20_000);
    } finally {
      first.close();
      firstRead();
    }
    expect(first.frames.some((frame) => frame.data.includes('"message.completed"'))).toBe(false);
    expect(first.status).toBe(200);
    expect(first.contentType).toBe('text/event-stream; charset=utf-8');
    expect(first.frames[0]!.event).toBe('snapshot');

    const messages = new Map<string, Message>();
    for (const message of JSON.parse(first.frames[0]!.data).messages as Message[]) messages.set(message.id, message);
    const seen: ConversationEvent[] = [];
    const apply = (frames: SseFrame[]) => {
      for (const frame of frames.filter((f) => f.event === undefined)) {
        const event = JSON.parse(frame.data) as ConversationEvent;
        expect(frame.id).toBe(event.cursor);
        expect(event.prev).toBe(seen.at(-1)?.cursor ?? first.frames[0]!.id);
        seen.push(event);
        expect(applyEvent(messages, event.event, event.cursor)).toBe(true);
      }
    };
    apply(first.frames);
    await streaming;
    const second = await readSse(url, { 'last-event-id': seen.at(-1)!.cursor }, (frames) => frames.some((frame) => frame.data.includes('"message.completed"')));
    expect(second.frames.some((frame) => frame.event === 'snapshot')).toBe(false);
    apply(second.frames);
    expect(messages.get('ans')).toMatchObject({ status: 'complete', text: tokens.join('') });
    expect(new Set(seen.map((event) => event.cursor)).size).toBe(seen.length);
  });

  /** Writes `head` (and `body`) on a raw socket; resolves with the first line the server answers, or "no answer" after 3 s. */
  async function rawRequest(head: string, body = ''): Promise<string> {
    const { port } = new URL(seqline.server.url);
    const socket = tcpConnect(Number(port), '127.0.0.1');
    try {
      return await new Promise<string>((resolve) => {
        const timer = setTimeout(() => resolve('no answer'), 3_000);
        let received = '';
        socket.on('data', (chunk) => {
          received += chunk.toString();
          if (!received.includes('\r\n')) return;
          clearTimeout(timer);
          resolve(received.split('\r\n')[0]!);
        });
        socket.write(`${head}\r\n${body}`);
      });
    } finally {
      socket.destroy();
    }
  }

  it('opens a stream asked for with a body, and one whose target is in absolute form with a port URL refuses, rather than hanging or failing 500', async () => {
    await createConversation(seqline.server.url, 'c-raw');
    const body = '{}';
    expect(await rawRequest(`GET /v1/conversations/c-raw/stream HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n`, body)).toBe('HTTP/1.1 200 OK');
    expect(await rawRequest('GET http://a:99999999/v1/conversations/c-raw/stream HTTP/1.1\r\nHost: x\r\n')).toBe('HTTP/1.1 200 OK');
  });

  it('answers an unknown conversation with 404 and a malformed cursor with 400', async () => {
    const { server } = seqline;
    await createConversation(server.url, 'c-sse-errors');
    const missing = await fetch(`${server.url}/v1/conversations/nope/stream`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ code: 'UNKNOWN_CONVERSATION', message: 'conversation nope does not exist' });
    const bad = await fetch(`${server.url}/v1/conversations/c-sse-errors/stream`, { headers: { 'last-event-id': 'garbage' } });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ code: 'BAD_CURSOR' });
  });

  it('answers HEAD 405 with Allow: GET at once, opening no stream', async () => {
    const { server } = seqline;
    await createConversation(server.url, 'c-sse-head');
    const subscriptions = async () => Number(/^seqline_subscriptions_open (\d+)$/m.exec(await (await fetch(`${server.url}/metrics`)).text())?.[1]);
    const before = await subscriptions();
    expect(before).toBeGreaterThanOrEqual(0);
    const head = await fetch(`${server.url}/v1/conversations/c-sse-head/stream`, { method: 'HEAD', signal: AbortSignal.timeout(5_000) });
    expect({ status: head.status, allow: head.headers.get('allow') }).toEqual({ status: 405, allow: 'GET' });
    expect(await subscriptions()).toBe(before);
  });
});
