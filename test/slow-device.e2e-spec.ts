import type { Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { createConversation, eventually, http, ResilientDevice, useSeqline, WsDevice } from '@seqline/testing';
import WebSocket from 'ws';
import type { SeqlineAgent } from '@seqline/agent';
import { ConversationLog } from '@seqline/streams';

/** Streams one answer of `parts` × 16,000 `char`s, in bursts with short pauses, as a fast model would. */
async function streamLongAnswer(agent: SeqlineAgent, conversationId: string, messageId: string, char: string, parts: number): Promise<void> {
  const answer = agent.startMessage(conversationId, { messageId });
  for (let i = 0; i < parts; i++) {
    answer.append(char.repeat(16_000));
    if (i % 20 === 19) await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await answer.complete();
}

/** With a reader's snapshot still unsent: streams a short answer `after` ('live-after-snapshot'), with time for the server to send it on. */
async function streamWhileUnread(agent: SeqlineAgent, conversationId: string): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 500));
  const live = agent.startMessage(conversationId, { messageId: 'after' });
  live.append('live-after-snapshot');
  await live.complete();
  await new Promise((resolve) => setTimeout(resolve, 500));
}

/** Resolves once `marker` has arrived on `tcp`, after calling `pause` (the rest then waits in the kernel's buffers). `chunks` keeps what was read. */
function pauseOnceReceived(tcp: Socket, marker: string, pause: () => void, chunks: Buffer[] = []): Promise<void> {
  return new Promise((resolve) => {
    const read = (chunk: Buffer): void => {
      chunks.push(chunk);
      if (!Buffer.concat(chunks).includes(marker)) return;
      tcp.off('data', read);
      pause();
      resolve();
    };
    tcp.on('data', read);
  });
}

describe('a device that cannot keep up', () => {
  const seqline = useSeqline({ WS_MAX_BUFFERED_BYTES: '65536', LIMIT_MESSAGE_CHARS: '20000000' });

  it('disconnects a device whose unsent buffer passes the bound with 4008, without slowing the others', async () => {
    const { server } = seqline;
    await createConversation(server.url, 'slow');
    const healthy = new WsDevice(server.url, 'slow');
    // Reconnects by itself after being cut off, as the SDK does.
    const slow = new ResilientDevice([server.url], 'slow');
    await healthy.connect();
    await slow.connect();
    // The slow device stops reading: its kernel buffers fill, then the server's send buffer.
    slow.pauseReading();

    await streamLongAnswer(await seqline.agent('firehose'), 'slow', 'big', 'x', 400);
    // The healthy device keeps pace with the agent: it has the end moments after the agent wrote
    // it, not once the slow one's buffer drains (which it never does while it does not read).
    const completedAt = performance.now();
    await healthy.until(() => healthy.messages.get('big')?.status === 'complete', 60_000);
    expect(performance.now() - completedAt).toBeLessThan(15_000);
    expect(healthy.text('big')!.length).toBe(400 * 16_000);
    expect(healthy.violations).toEqual([]);

    slow.resumeReading();
    // It is cut off with 4008, resumes from its cursor (more cut-offs are fine on a busy machine) and ends exact.
    await slow.until(() => slow.messages.get('big')?.status === 'complete', 90_000);
    expect(slow.closeCodes[0]).toBe(4008);
    expect(slow.text('big')).toBe(healthy.text('big'));
    expect(slow.duplicates).toBe(0);
    await Promise.all([healthy.close(), slow.stop()]);
  });

  it('sends the whole snapshot of a conversation larger than the bound, though live events arrive while it is still unsent', async () => {
    await createConversation(seqline.server.url, 'big-ws');
    const agent = await seqline.agent('ws-history');
    await streamLongAnswer(agent, 'big-ws', 'history', 'y', 500);

    const socket = new WebSocket(`${seqline.server.url.replace(/^http/, 'ws')}/v1/ws`);
    await new Promise((resolve) => socket.once('open', resolve));
    const frames: { type: string; messages?: { id: string; text: string }[]; event?: { delta?: string } }[] = [];
    const closes: number[] = [];
    socket.on('message', (data) => frames.push(JSON.parse(String(data))));
    socket.on('close', (code) => closes.push(code));
    // It stops reading once the snapshot's first bytes arrive: the snapshot is built (so the live
    // event below comes after it) and the rest of its 8 MB fills the kernel buffers, then the server's send buffer.
    // (A heartbeat ping may come first.)
    const snapshotStarted = pauseOnceReceived((socket as unknown as { _socket: Socket })._socket, '"type":"snapshot"', () => socket.pause());
    socket.send(JSON.stringify({ type: 'subscribe', conversationId: 'big-ws' }));
    await snapshotStarted;
    await streamWhileUnread(agent, 'big-ws');
    socket.resume();
    await eventually(() => frames.some((frame) => frame.event?.delta === 'live-after-snapshot') || closes.length > 0, 30_000, 'the live event arrived after the snapshot');
    expect(closes).toEqual([]);
    expect(frames[0]!.type).toBe('snapshot');
    expect(frames[0]!.messages!.find((message) => message.id === 'history')!.text).toBe('y'.repeat(500 * 16_000));
    expect(frames[0]!.messages!.map((message) => message.id)).not.toContain('after');
    socket.close();
  });
});

describe('an SSE reader that cannot keep up', () => {
  const seqline = useSeqline({ WS_MAX_BUFFERED_BYTES: '65536', LIMIT_MESSAGE_CHARS: '20000000' });
  const connections = (): Promise<number> =>
    new Promise((resolve, reject) => (seqline.server.app.getHttpServer() as Server).getConnections((error, count) => (error ? reject(error) : resolve(count))));

  it('is cut off and its connection closed at once, not kept while its buffer waits to flush', async () => {
    await createConversation(seqline.server.url, 'slow-sse');
    // Only the reader's connection counts from here (the REST call's keep-alive connection closes after 5 s).
    await eventually(async () => (await connections()) === 0, 15_000, 'no connections left open');
    const { port } = new URL(seqline.server.url);
    const reader = connect(Number(port), '127.0.0.1');
    // It reads the response's head, then stops reading: its kernel buffers fill, then the server's send buffer.
    const head = new Promise<string>((resolve) =>
      reader.once('data', (chunk: Buffer) => {
        reader.pause();
        resolve(chunk.toString('latin1'));
      }),
    );
    reader.write(`GET /v1/conversations/slow-sse/stream HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
    // A stream, not a refusal (whose connection would close after the keep-alive wait too).
    expect(await head).toMatch(/^HTTP\/1\.1 200 OK\r\n(.*\r\n)*content-type: text\/event-stream/i);
    await eventually(async () => (await connections()) === 1, 5_000, 'the reader connected');

    await streamLongAnswer(await seqline.agent('sse-firehose'), 'slow-sse', 'big', 'x', 400);
    // Cut off as a slow consumer: its socket is closed while it still reads nothing.
    await eventually(async () => (await connections()) === 0, 10_000, "the reader's connection closed");
    reader.destroy();
    expect(await (await fetch(`${seqline.server.url}/metrics`)).text()).toMatch(/^seqline_slow_consumers_total 1$/m);
  });

  it('gets the whole snapshot of a conversation larger than the bound, though live events arrive while it is still unsent', async () => {
    await createConversation(seqline.server.url, 'big-sse');
    const agent = await seqline.agent('sse-history');
    await streamLongAnswer(agent, 'big-sse', 'history', 'y', 500);
    await eventually(async () => (await connections()) === 0, 15_000, 'no connections left open');

    const { port } = new URL(seqline.server.url);
    const reader = connect(Number(port), '127.0.0.1');
    const chunks: Buffer[] = [];
    // It stops reading once the snapshot's first bytes arrive: the snapshot is built (so the live
    // event below comes after it) and the rest of its 8 MB fills the kernel buffers, then the server's send buffer.
    const snapshotStarted = pauseOnceReceived(reader, 'event: snapshot', () => reader.pause(), chunks);
    reader.write(`GET /v1/conversations/big-sse/stream HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
    await snapshotStarted;
    await streamWhileUnread(agent, 'big-sse');
    // Not cut off for the snapshot's own size.
    expect(await connections()).toBe(1);

    reader.on('data', (chunk: Buffer) => chunks.push(chunk));
    reader.resume();
    await eventually(() => Buffer.concat(chunks).includes('live-after-snapshot'), 30_000, 'the live event arrived after the snapshot');
    const received = Buffer.concat(chunks).toString();
    const snapshot = /event: snapshot\nid: [^\n]+\ndata: (.*)\n\n/.exec(received);
    const messages = (JSON.parse(snapshot![1]!) as { messages: { id: string; text: string }[] }).messages;
    expect(messages.find((message) => message.id === 'history')!.text).toBe('y'.repeat(500 * 16_000));
    expect(messages.map((message) => message.id)).not.toContain('after');
    expect(received.indexOf('live-after-snapshot')).toBeGreaterThan(snapshot!.index);
    reader.destroy();
  });
});

describe('a device that went silent', () => {
  const seqline = useSeqline({ WS_HEARTBEAT_INTERVAL: '300ms' });

  it('is closed when it stops answering heartbeats', async () => {
    const socket = new WebSocket(`${seqline.server.url.replace(/^http/, 'ws')}/v1/ws`, { autoPong: false });
    const closed = new Promise<number>((resolve) => socket.on('close', (code) => resolve(code)));
    await new Promise((resolve) => socket.once('open', resolve));
    const started = Date.now();
    expect(await closed).toBe(1006);
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('stays open while it answers, pinged once per interval', async () => {
    const socket = new WebSocket(`${seqline.server.url.replace(/^http/, 'ws')}/v1/ws`);
    const pings: number[] = [];
    let closed = false;
    socket.on('ping', (data: Buffer) => {
      expect(data.length).toBe(0);
      pings.push(Date.now());
    });
    socket.on('close', () => (closed = true));
    await new Promise((resolve) => socket.once('open', resolve));
    const opened = Date.now();
    // Five intervals answered: a socket that missed one would have been closed by now. Five
    // pings take 1.5 s; 6 s leaves a busy machine room, and still catches a heartbeat 4x too slow.
    for (let waited = 0; pings.length < 5 && waited < 6_000; waited += 50) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(pings.length).toBeGreaterThanOrEqual(5);
    expect(closed).toBe(false);
    // Never more than one ping per interval (300 ms), however late the timer ran.
    expect(pings.length).toBeLessThanOrEqual(Math.floor((Date.now() - opened) / 300) + 1);
    socket.close();
  });
});

describe('a catch-up read whose reader pauses between batches', () => {
  const seqline = useSeqline();

  it('goes on with a new reader from where it stopped when JetStream deleted the idle one, every event once and in order', async () => {
    const { url, infra } = seqline.server;
    await createConversation(url, 'slow-read');
    const writer = new ConversationLog(infra.stream);
    const at = () => new Date().toISOString();
    let last = (await writer.append('slow-read', { type: 'message.created', messageId: 'long', author: { role: 'agent', id: 'bot' }, status: 'streaming', text: '', at: at() }, 0, 'slow-read-created')).seq;
    const parts = 1_500;
    for (let part = 1; part <= parts; part++) {
      last = (await writer.append('slow-read', { type: 'message.appended', messageId: 'long', part, delta: 'x', at: at() }, last, `slow-read-${part}`)).seq;
    }
    // A reader JetStream gives up after 1 s without a pull (30 s in the service).
    const log = new ConversationLog(infra.stream, 1_000);
    const seqs: number[] = [];
    for await (const batch of log.readBatches('slow-read', 0, 10_000, 500)) {
      seqs.push(...batch.map((entry) => entry.seq));
      // A device that takes a while to take each batch: the reader is gone before the next pull.
      if (seqs.length === 500) await new Promise((resolve) => setTimeout(resolve, 4_000));
    }
    expect(seqs.length).toBe(parts + 1);
    expect(seqs.at(-1)).toBe(last);
    expect(seqs.every((seq, i) => i === 0 || seq > seqs[i - 1]!)).toBe(true);
  }, 60_000);
});

describe('history pages of long answers', () => {
  const seqline = useSeqline({ LIMIT_MESSAGE_CHARS: '20000000' });

  it('holds fewer messages than the limit once a page has about 4 MiB of text, and pages on to the rest', async () => {
    const { url } = seqline.server;
    await createConversation(url, 'long-history');
    const agent = await seqline.agent('long-writer');
    // Three answers of 1.6 MB each: two fit in a page, the third would take it past 4 MiB.
    for (const [id, char] of [['a1', 'x'], ['a2', 'y'], ['a3', 'z']] as const) await streamLongAnswer(agent, 'long-history', id, char, 100);
    const page = (after?: string) => http<{ items: { id: string; text: string }[]; next: string | null }>(url, 'GET', `/v1/conversations/long-history/messages?limit=500${after ? `&after=${after}` : ''}`);
    await eventually(async () => (await page()).body.items.length === 2 && (await page()).body.items.every((item) => item.text.length === 1_600_000), 15_000, 'two answers persisted whole');
    await eventually(async () => {
      const first = (await page()).body;
      return first.next !== null && (await page(first.next)).body.items.length === 1 && (await page(first.next)).body.items[0]!.text.length === 1_600_000;
    }, 15_000, 'the third persisted whole');
    const first = (await page()).body;
    expect(first.items.map((item) => [item.id, item.text])).toEqual([
      ['a1', 'x'.repeat(1_600_000)],
      ['a2', 'y'.repeat(1_600_000)],
    ]);
    const second = (await page(first.next!)).body;
    expect({ ids: second.items.map((item) => item.id), text: second.items[0]!.text === 'z'.repeat(1_600_000), next: second.next }).toEqual({ ids: ['a3'], text: true, next: null });
  });
});
