import { createConversation, eventually, useSeqline, WsDevice } from '@seqline/testing';

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

    // Wait until JetStream has dropped those events; Postgres keeps the history.
    await eventually(async () => (await server.infra.stream.bounds()).first > Number(oldCursor.split('-')[1]), 15_000, 'retention');
    // And until this instance has let go of the conversation's recent events in memory.
    await eventually(async () => /^seqline_live_feeds 0$/m.test(await (await fetch(`${server.url}/metrics`)).text()), 15_000, 'feed dropped');
    expect((await server.infra.prisma.message.findFirst({ where: { conversationId: 'old', id: 'first' } }))?.text).toBe('early text');

    const late = new WsDevice(server.url, 'old');
    late.cursor = oldCursor;
    await late.connect();
    expect(late.frames.find((frame) => frame.type === 'snapshot' || frame.type === 'subscribed')?.type).toBe('snapshot');
    expect(late.text('first')).toBe('early text');
    const second = agent.startMessage('old', { messageId: 'second' });
    second.append('live text');
    await second.complete();
    await late.until(() => late.messages.get('second')?.status === 'complete');
    expect(late.text('second')).toBe('live text');
    expect(late.violations).toEqual([]);
    await late.close();
  });
});
