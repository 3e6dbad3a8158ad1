import { parseCursor, type Message } from '@seqline/protocol';
import { createConversation, eventually, http, SseStream, useSeqline, WsDevice } from '@seqline/testing';

const texts = (messages: Iterable<{ text: string }>): string[] => [...messages].map((message) => message.text);

describe('a cursor older than the log retention', () => {
  const seqline = useSeqline({ LOG_RETENTION: '2s', PERSIST_LAG_DEGRADED: '1s', LOG_DUPLICATE_WINDOW: '1s', FEED_LINGER: '200ms' });

  it('gets a snapshot from Postgres, then the live events', async () => {
    const { server } = seqline;
    await createConversation(server.url, 'old');
    const agent = await seqline.agent('retained');
    const device = new WsDevice(server.url, 'old');
    await device.connect();
    const first = agent.startMessage('old', { messageId: 'first' });
    first.append('early text');
    await first.complete();
    await device.until(() => device.messages.get('first')?.status === 'complete');
    const oldCursor = device.cursor!;
    await device.close();
    // Written while the device was away: it missed this.
    const { body: missed } = await http<{ cursor: string }>(server.url, 'POST', '/v1/conversations/old/messages', { messageId: 'missed', text: 'written while away', authorId: 'u' });

    // Wait until JetStream has dropped those events; Postgres keeps the history.
    await eventually(async () => (await server.infra.stream.bounds()).first > parseCursor(missed.cursor)!.seq, 15_000, 'retention');
    // And until this instance has let go of the conversation's recent events in memory.
    await eventually(async () => /^seqline_live_feeds 0$/m.test(await (await fetch(`${server.url}/metrics`)).text()), 15_000, 'feed dropped');
    expect((await server.infra.prisma.message.findFirst({ where: { conversationId: 'old', id: 'first' } }))?.text).toBe('early text');

    const late = new WsDevice(server.url, 'old');
    late.cursor = oldCursor;
    await late.connect();
    expect(late.frames.find((frame) => frame.type === 'snapshot' || frame.type === 'subscribed')?.type).toBe('snapshot');
    expect(late.text('first')).toBe('early text');
    expect(late.text('missed')).toBe('written while away');
    // A device that missed nothing (its cursor is the conversation's last event, expired too) is not sent the whole conversation again.
    const current = new WsDevice(server.url, 'old');
    current.cursor = missed.cursor;
    await current.connect();
    expect(current.frames.find((frame) => frame.type === 'snapshot' || frame.type === 'subscribed')).toMatchObject({ type: 'subscribed', cursor: missed.cursor });
    await current.close();
    const second = agent.startMessage('old', { messageId: 'second' });
    second.append('live text');
    await second.complete();
    await late.until(() => late.messages.get('second')?.status === 'complete');
    expect(late.text('second')).toBe('live text');
    expect(late.violations).toEqual([]);
    await late.close();
  });

  it('answers `<epoch>-0` with a snapshot once every event of the conversation has expired, and with `subscribed` on a conversation that has none', async () => {
    const { server } = seqline;
    const { url } = server;
    await createConversation(url, 'all-expired');
    await createConversation(url, 'never-written');
    const { body: gone } = await http<{ cursor: string }>(url, 'POST', '/v1/conversations/all-expired/messages', { messageId: 'm1', text: 'only in Postgres now', authorId: 'u' });
    const origin = `${server.infra.stream.epoch}-0`;
    await eventually(async () => (await server.infra.prisma.message.findFirst({ where: { conversationId: 'all-expired', id: 'm1' } }))?.text === 'only in Postgres now', 10_000, 'persisted');
    await eventually(async () => (await server.infra.stream.bounds()).first > parseCursor(gone.cursor)!.seq, 15_000, 'retention');

    // Every event of it is gone from the log: `<epoch>-0` is expired, as any cursor whose next events are.
    const device = new WsDevice(url, 'all-expired');
    device.cursor = origin;
    await device.connect();
    expect(device.frames).toEqual([expect.objectContaining({ type: 'snapshot', conversationId: 'all-expired', cursor: gone.cursor })]);
    expect(texts(device.messages.values())).toEqual(['only in Postgres now']);
    const sse = await SseStream.open(`${url}/v1/conversations/all-expired/stream?after=${origin}`);
    await sse.until(() => sse.frames.length > 0, 15_000);
    expect(sse.frames.map((frame) => [frame.event, frame.id])).toEqual([['snapshot', gone.cursor]]);
    expect(texts((JSON.parse(sse.frames[0]!.data) as { messages: Message[] }).messages)).toEqual(['only in Postgres now']);
    expect(await http(url, 'GET', `/v1/conversations/all-expired/events?after=${origin}`)).toMatchObject({ status: 410, body: { code: 'CURSOR_EXPIRED' } });

    const { body: next } = await http<{ cursor: string }>(url, 'POST', '/v1/conversations/all-expired/messages', { messageId: 'm2', text: 'live again', authorId: 'u' });
    await device.until(() => device.messages.has('m2'));
    expect(device.frames.slice(1)).toEqual([expect.objectContaining({ type: 'event', cursor: next.cursor, prev: gone.cursor })]);
    expect(texts(device.messages.values())).toEqual(['only in Postgres now', 'live again']);
    expect(device.violations).toEqual([]);
    await sse.until(() => sse.frames.length > 1, 15_000);
    expect(sse.frames.slice(1).map((frame) => [frame.event, frame.id])).toEqual([[undefined, next.cursor]]);

    // A conversation with no event yet: `<epoch>-0` is its head, a plain resume.
    const empty = new WsDevice(url, 'never-written');
    empty.cursor = origin;
    await empty.connect();
    expect(empty.frames).toEqual([expect.objectContaining({ type: 'subscribed', conversationId: 'never-written', cursor: origin, head: origin })]);
    expect(await http(url, 'GET', `/v1/conversations/never-written/events?after=${origin}`)).toMatchObject({ status: 200, body: { items: [], next: null } });
    const { body: first } = await http<{ cursor: string }>(url, 'POST', '/v1/conversations/never-written/messages', { messageId: 'n1', text: 'first words', authorId: 'u' });
    await empty.until(() => empty.messages.has('n1'));
    expect(empty.frames.slice(1)).toEqual([expect.objectContaining({ type: 'event', cursor: first.cursor, prev: origin })]);
    expect(texts(empty.messages.values())).toEqual(['first words']);
    expect(empty.violations).toEqual([]);

    sse.close();
    await Promise.all([device.close(), empty.close()]);
  });
});
