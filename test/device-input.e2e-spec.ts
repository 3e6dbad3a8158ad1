import { connect } from '@nats-io/transport-node';
import { subjects, type ServerFrame } from '@seqline/protocol';
import { createConversation, eventually, http, useSeqline, WsDevice } from '@seqline/testing';

describe('WebSocket frames from devices', () => {
  const seqline = useSeqline({ LIMIT_SUBSCRIPTIONS_PER_SOCKET: '2', LIMIT_FRAME_BYTES: '2048', LIMIT_MESSAGE_CHARS: '1000' });

  const lastError = (device: WsDevice) => device.frames.filter((frame): frame is Extract<ServerFrame, { type: 'error' }> => frame.type === 'error').at(-1);

  it('posts a user message once, however often it is retried, and hands it to agents', async () => {
    const { server } = seqline;
    await createConversation(server.url, 'c-post');
    const agent = await seqline.agent('listener');
    const prompts: string[] = [];
    await agent.onPrompt(async (prompt) => {
      prompts.push(`${prompt.messageId}:${prompt.text}`);
    }, { group: 'test-listeners' });
    const device = new WsDevice(server.url, 'c-post');
    await device.connect();
    for (let i = 0; i < 3; i++) device.send({ type: 'post', ref: `r${i}`, conversationId: 'c-post', messageId: 'q1', text: 'What is <b>1</b>; DROP TABLE messages;--' });
    await device.until(() => device.frames.filter((frame) => frame.type === 'ack').length === 3);
    const acks = device.frames.filter((frame) => frame.type === 'ack');
    expect(new Set(acks.map((ack) => ack.type === 'ack' && ack.cursor)).size).toBe(1);
    await device.until(() => device.messages.has('q1'));
    expect(device.messages.get('q1')).toMatchObject({ status: 'complete', text: 'What is <b>1</b>; DROP TABLE messages;--', author: { role: 'user', id: 'device' } });
    await eventually(() => prompts.length === 1);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(prompts).toEqual(['q1:What is <b>1</b>; DROP TABLE messages;--']);
    expect(device.events.filter((event) => event.event.messageId === 'q1')).toHaveLength(1);
    await device.close();
  });

  it('answers each bad frame with its error code and keeps serving the socket', async () => {
    const { server } = seqline;
    await createConversation(server.url, 'c-bad');
    await createConversation(server.url, 'c-bad-2');
    await createConversation(server.url, 'c-bad-3');
    const device = new WsDevice(server.url, 'c-bad');
    await device.connect();
    const cases: [unknown, string, string][] = [
      ['{"type":', 'BAD_FRAME', 'frame is not valid JSON'],
      [{ type: 'teleport' }, 'BAD_FRAME', 'type: Invalid discriminator value. Expected \'subscribe\' | \'unsubscribe\' | \'post\' | \'cancel\' | \'ping\' | \'auth\''],
      [{ type: 'subscribe', conversationId: 'has spaces' }, 'VALIDATION_FAILED', 'conversationId: ids are 1-128 characters of A-Z a-z 0-9 _ - (not __proto__)'],
      [{ type: 'subscribe' }, 'VALIDATION_FAILED', 'conversationId: Invalid input: expected string, received undefined'],
      [[1, 2], 'BAD_FRAME', 'frame: Invalid input: expected object, received array'],
      [{ type: 'subscribe', conversationId: 'nope' }, 'UNKNOWN_CONVERSATION', 'conversation nope does not exist'],
      [{ type: 'subscribe', conversationId: 'c-bad-2', after: 'not-a-cursor!' }, 'BAD_CURSOR', '"not-a-cursor!" is not a cursor (expected <epoch>-<sequence>)'],
      // A stored cursor gone corrupt is a cursor to give up, whatever its length: the client starts over from a snapshot.
      [{ type: 'subscribe', conversationId: 'c-bad-2', after: `${seqline.server.infra.stream.epoch}-${'9'.repeat(70)}` }, 'BAD_CURSOR', `"${seqline.server.infra.stream.epoch}-${'9'.repeat(70)}" is not a cursor (expected <epoch>-<sequence>)`],
      [{ type: 'subscribe', conversationId: 'c-bad-2', after: `${seqline.server.infra.stream.epoch}-999999999` }, 'BAD_CURSOR', `cursor ${seqline.server.infra.stream.epoch}-999999999 is ahead of the log`],
      [{ type: 'post', conversationId: 'c-bad', messageId: 'big', text: 'x'.repeat(1001) }, 'MESSAGE_TOO_LARGE', 'message text is 1001 characters; the limit is 1000'],
      [{ type: 'post', conversationId: 'c-bad', messageId: 'huge', text: 'x'.repeat(3000) }, 'FRAME_TOO_LARGE', 'frame is 3069 bytes; the limit is 2048'],
      [{ type: 'post', conversationId: 'nope', messageId: 'm', text: 'hi' }, 'UNKNOWN_CONVERSATION', 'conversation nope does not exist'],
      [{ type: 'cancel', conversationId: 'c-bad', messageId: 'never-posted' }, 'UNKNOWN_MESSAGE', 'message never-posted does not exist in this conversation'],
      [{ type: 'unsubscribe', conversationId: 'c-bad-3' }, 'NOT_SUBSCRIBED', 'not subscribed to c-bad-3'],
    ];
    for (const [frame, code, message] of cases) {
      const before = device.frames.length;
      device.send(frame);
      await device.until(() => device.frames.slice(before).some((f) => f.type === 'error'));
      expect({ frame, code: lastError(device)?.code, message: lastError(device)?.message }).toEqual({ frame, code, message });
    }
    // A text frame that is not UTF-8 is one refused frame: the socket and its subscriptions stay.
    const before = device.frames.length;
    device.sendTextBytes(Buffer.concat([Buffer.from('{"type":"ping","ref":"'), Buffer.from([0xff]), Buffer.from('"}')]));
    await device.until(() => device.frames.slice(before).some((f) => f.type === 'error'));
    expect(lastError(device)).toMatchObject({ code: 'BAD_FRAME', message: 'frame is not valid UTF-8' });
    expect(device.closeCode).toBeUndefined();
    // A refused frame's error names the frame's ref and conversation, so the device knows which request failed.
    device.send({ type: 'post', ref: 'r-bad', conversationId: 'c-bad', messageId: 'no spaces allowed', text: 'hi' });
    await device.until(() => device.frames.some((frame) => frame.type === 'error' && frame.ref === 'r-bad'));
    expect(lastError(device)).toMatchObject({ type: 'error', ref: 'r-bad', conversationId: 'c-bad', code: 'VALIDATION_FAILED' });
    // A cursor from another conversation is refused rather than silently mixing logs.
    device.send({ type: 'post', ref: 'ok', conversationId: 'c-bad', messageId: 'fine', text: 'hello' });
    await device.until(() => device.frames.some((frame) => frame.type === 'ack' && frame.ref === 'ok'));
    const cursor = (device.frames.find((frame) => frame.type === 'ack' && frame.ref === 'ok') as { cursor: string }).cursor;
    device.send({ type: 'subscribe', ref: 'cross', conversationId: 'c-bad-2', after: cursor });
    await device.until(() => device.frames.some((frame) => frame.type === 'error' && frame.ref === 'cross'));
    expect(lastError(device)).toMatchObject({ code: 'BAD_CURSOR', conversationId: 'c-bad-2' });
    // The subscription limit (2 here) counts per socket.
    device.send({ type: 'subscribe', ref: 's2', conversationId: 'c-bad-2' });
    device.send({ type: 'subscribe', ref: 's3', conversationId: 'c-bad-3' });
    await device.until(() => device.frames.some((frame) => 'ref' in frame && frame.ref === 's3'));
    expect(device.frames.find((frame) => 'ref' in frame && frame.ref === 's3')).toMatchObject({ type: 'error', code: 'TOO_MANY_SUBSCRIPTIONS' });
    // Still serving: ping answers, and nothing refused reached the history.
    device.send({ type: 'ping', ref: 'p' });
    await device.until(() => device.frames.some((frame) => frame.type === 'pong'));
    const history = await http<{ items: { id: string }[] }>(server.url, 'GET', '/v1/conversations/c-bad/messages');
    await eventually(async () => (await http<{ items: { id: string }[] }>(server.url, 'GET', '/v1/conversations/c-bad/messages')).body.items.length === 1);
    expect(history.status).toBe(200);
    expect((await http<{ items: { id: string }[] }>(server.url, 'GET', '/v1/conversations/c-bad/messages')).body.items.map((m) => m.id)).toEqual(['fine']);
    await device.close();
  });

  it('cancels a streaming answer for every device and signals the agent', async () => {
    const { server } = seqline;
    await createConversation(server.url, 'c-cancel');
    const agent = await seqline.agent('cancellable');
    const device = new WsDevice(server.url, 'c-cancel');
    const other = new WsDevice(server.url, 'c-cancel');
    await device.connect();
    await other.connect();
    const answer = agent.startMessage('c-cancel', { messageId: 'stoppable' });
    answer.append('partial ');
    await device.until(() => device.text('stoppable') === 'partial ');
    device.send({ type: 'cancel', ref: 'stop', conversationId: 'c-cancel', messageId: 'stoppable' });
    await device.until(() => device.messages.get('stoppable')?.status === 'aborted');
    await other.until(() => other.messages.get('stoppable')?.status === 'aborted');
    await eventually(() => answer.signal.aborted);
    answer.append('more');
    await expect(answer.complete()).rejects.toMatchObject({ code: 'MESSAGE_FINISHED' });
    expect([device.text('stoppable'), other.text('stoppable')]).toEqual(['partial ', 'partial ']);
    expect(other.violations).toEqual([]);
    await device.close();
    await other.close();
  });

  it('sends the notice to agents again for a repeated cancel: the first one may have been written and never told', async () => {
    const { server, settings } = seqline;
    await createConversation(server.url, 'c-cancel-again');
    const nc = await connect({ servers: settings.nats.url });
    const notices: string[] = [];
    const subscription = nc.subscribe(subjects(settings.log.prefix).cancel('c-cancel-again'), { callback: (_error, msg) => void notices.push(msg.string()) });
    await nc.flush();
    const agent = await seqline.agent('cancellable-again');
    const answer = agent.startMessage('c-cancel-again', { messageId: 'stoppable' });
    answer.append('partial ');
    await answer.ready;
    const device = new WsDevice(server.url, 'c-cancel-again');
    await device.connect();
    for (const ref of ['first', 'again']) {
      device.send({ type: 'cancel', ref, conversationId: 'c-cancel-again', messageId: 'stoppable' });
      await device.until(() => device.frames.some((frame) => frame.type === 'ack' && frame.ref === ref));
    }
    await eventually(() => notices.length === 2, 5_000, 'two cancel notices');
    expect(notices.map((notice) => JSON.parse(notice) as unknown)).toEqual([
      { conversationId: 'c-cancel-again', messageId: 'stoppable', reason: 'cancelled by a device', status: 'aborted' },
      { conversationId: 'c-cancel-again', messageId: 'stoppable', reason: 'cancelled by a device', status: 'aborted' },
    ]);
    expect(answer.endedAs).toBe('aborted');
    expect(device.events.filter((event) => event.event.type === 'message.aborted')).toHaveLength(1);
    await expect(answer.complete()).rejects.toMatchObject({ code: 'MESSAGE_FINISHED' });
    subscription.unsubscribe();
    await device.close();
    await nc.close();
  });
});

describe('admin REST', () => {
  const seqline = useSeqline();

  it('creates, lists with pagination, and reads conversations', async () => {
    const { server } = seqline;
    for (const id of ['r-a', 'r-b', 'r-c']) expect((await http(server.url, 'POST', '/v1/conversations', { id, title: `T ${id}` })).status).toBe(201);
    expect(await http(server.url, 'POST', '/v1/conversations', { id: 'r-a' })).toEqual({ status: 409, body: { code: 'CONVERSATION_EXISTS', message: 'conversation r-a already exists' } });
    expect((await http(server.url, 'POST', '/v1/conversations', { id: 'bad id' })).body).toMatchObject({ code: 'VALIDATION_FAILED' });
    expect((await http(server.url, 'POST', '/v1/conversations', '{oops')).body).toMatchObject({ code: 'BAD_FRAME' });
    const generated = await http<{ id: string }>(server.url, 'POST', '/v1/conversations', {});
    expect(generated.body.id).toMatch(/^[0-9a-f-]{36}$/);

    const page1 = await http<{ items: { id: string }[]; next: string }>(server.url, 'GET', '/v1/conversations?limit=2');
    expect(page1.body.items.map((c) => c.id)).toEqual([generated.body.id, 'r-a'].sort().slice(0, 2));
    const all: string[] = [];
    let after: string | null = null;
    do {
      const page: { body: { items: { id: string }[]; next: string | null } } = await http(server.url, 'GET', `/v1/conversations?limit=2${after ? `&after=${after}` : ''}`);
      all.push(...page.body.items.map((c) => c.id));
      after = page.body.next;
    } while (after);
    expect(all).toEqual(['r-a', 'r-b', 'r-c', generated.body.id].sort());
    expect((await http(server.url, 'GET', '/v1/conversations/r-b')).body).toMatchObject({ id: 'r-b', title: 'T r-b' });
    expect(await http(server.url, 'GET', '/v1/conversations/zzz')).toEqual({ status: 404, body: { code: 'UNKNOWN_CONVERSATION', message: 'conversation zzz does not exist' } });
    expect((await http(server.url, 'GET', '/v1/conversations?limit=0')).status).toBe(400);
  });

  it('pages through history one item per message, with full text, by cursor', async () => {
    const { server } = seqline;
    await createConversation(server.url, 'r-hist');
    const agent = await seqline.agent('historian');
    for (let i = 0; i < 5; i++) {
      expect((await http(server.url, 'POST', '/v1/conversations/r-hist/messages', { messageId: `q${i}`, text: `question ${i}` })).status).toBe(202);
      const answer = agent.startMessage('r-hist', { messageId: `a${i}` });
      for (let t = 0; t < 30; t++) answer.append(`t${t} `);
      await answer.complete();
    }
    await eventually(async () => (await server.infra.prisma.message.count({ where: { conversationId: 'r-hist', status: 'complete' } })) === 10);
    const ids: string[] = [];
    const texts = new Map<string, string>();
    let after: string | null = null;
    let pages = 0;
    do {
      const page: { status: number; body: { items: { id: string; text: string }[]; next: string | null } } = await http(server.url, 'GET', `/v1/conversations/r-hist/messages?limit=3${after ? `&after=${after}` : ''}`);
      expect(page.status).toBe(200);
      for (const item of page.body.items) {
        ids.push(item.id);
        texts.set(item.id, item.text);
      }
      after = page.body.next;
      pages++;
    } while (after);
    expect(pages).toBe(4);
    expect(ids).toEqual(['q0', 'a0', 'q1', 'a1', 'q2', 'a2', 'q3', 'a3', 'q4', 'a4']);
    const full = Array.from({ length: 30 }, (_, t) => `t${t} `).join('');
    expect(texts.get('a3')).toBe(full);
    expect(texts.get('q2')).toBe('question 2');

    expect((await http(server.url, 'GET', '/v1/conversations/r-hist/messages?after=nonsense')).body).toMatchObject({ code: 'BAD_CURSOR' });
    expect((await http(server.url, 'GET', '/v1/conversations/r-hist/messages?after=abc-12')).body).toMatchObject({ code: 'BAD_CURSOR' });
    expect((await http(server.url, 'GET', '/v1/conversations/nobody/messages')).status).toBe(404);

    const events = await http<{ items: { cursor: string; prev: string }[]; next: string }>(server.url, 'GET', '/v1/conversations/r-hist/events?limit=4');
    expect(events.body.items).toHaveLength(4);
    const more = await http<{ items: { cursor: string; prev: string }[] }>(server.url, 'GET', `/v1/conversations/r-hist/events?limit=4&after=${events.body.next}`);
    expect(more.body.items[0]!.prev).toBe(events.body.items[3]!.cursor);
  });
});
