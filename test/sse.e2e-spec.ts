import { request } from 'node:http';
import { applyEvent, type ConversationEvent, type Message } from '@seqline/protocol';
import { createConversation, useSeqline } from '@seqline/testing';

interface SseFrame {
  id?: string;
  event?: string;
  data: string;
}

/** Reads an SSE response until `stop` says so, then destroys the connection (a dropped network). */
function readSse(url: string, headers: Record<string, string>, stop: (frames: SseFrame[]) => boolean): Promise<{ status: number; frames: SseFrame[]; contentType?: string }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error('SSE stream did not reach the expected frames within 20 s'));
    }, 20_000);
    const req = request(url, { headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      const frames: SseFrame[] = [];
      let buffer = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const frame: SseFrame = { data: '' };
          for (const line of block.split('\n')) {
            if (line.startsWith('id: ')) frame.id = line.slice(4);
            else if (line.startsWith('event: ')) frame.event = line.slice(7);
            else if (line.startsWith('data: ')) frame.data += line.slice(6);
          }
          if (frame.data) frames.push(frame);
        }
        if (res.statusCode !== 200 || stop(frames)) {
          clearTimeout(timer);
          req.destroy();
          resolve({ status: res.statusCode!, frames, contentType: res.headers['content-type'] });
        }
      });
      res.on('end', () => resolve({ status: res.statusCode!, frames, contentType: res.headers['content-type'] }));
    });
    req.on('error', (error) => ((error as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : reject(error)));
    req.end();
  });
}

describe('SSE stream', () => {
  const seqline = useSeqline();

  it('resumes exactly from Last-Event-ID', async () => {
    const { server } = seqline;
    await createConversation(server.url, 'c-sse');
    const agent = await seqline.agent('sse-writer');
    const answer = agent.startMessage('c-sse', { messageId: 'ans' });
    const tokens = Array.from({ length: 600 }, (_, i) => ` s${i}`);
    const streaming = (async () => {
      for (const [i, token] of tokens.entries()) {
        answer.append(token);
        if (i % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 10));
      }
      await answer.complete();
    })();
    const url = `${server.url}/v1/conversations/c-sse/stream`;
    // Three events in, the answer (about 600 ms of streaming) is still going.
    const first = await readSse(url, {}, (frames) => frames.filter((frame) => frame.event === undefined).length >= 3);
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
});
