import { connect, type NatsConnection } from '@nats-io/transport-node';
import { WRITE_PARTITIONS, type AgentCommand, type AgentReply } from '@seqline/protocol';
import { createConversation, eventually, http, useSeqline, WsDevice } from '@seqline/testing';

/** Agent commands sent as raw NATS requests, exactly as an agent in another language would. */
describe('agent commands over NATS', () => {
  const seqline = useSeqline({ LIMIT_DELTA_CHARS: '100', LIMIT_MESSAGE_CHARS: '300' });
  let nc: NatsConnection;
  const request = async (conversationId: string, command: AgentCommand | string): Promise<AgentReply> => {
    const payload = typeof command === 'string' ? command : JSON.stringify(command);
    const reply = await nc.request(`${seqline.settings.log.prefix}.agent.${conversationId}`, payload, { timeout: 5_000 });
    return reply.json<AgentReply>();
  };

  beforeAll(async () => {
    nc = await connect({ servers: seqline.settings.nats.url });
    await createConversation(seqline.server.url, 'c-cmd');
    // Until it owns the write partitions, the instance writes as no owner, and its replies name no writer.
    await eventually(() => seqline.server.infra.partitions.owned.length === WRITE_PARTITIONS, 20_000, 'every write partition owned');
  });
  afterAll(async () => nc.close());

  it('applies a retried start, append and complete once', async () => {
    const device = new WsDevice(seqline.server.url, 'c-cmd');
    await device.connect();
    const start = { type: 'message.start', messageId: 'm-retry', agentId: 'raw' } as const;
    const first = await request('c-cmd', start);
    expect(first).toMatchObject({ ok: true, duplicate: false });
    expect(await request('c-cmd', start)).toEqual({
      ok: true,
      duplicate: true,
      cursor: (first as { cursor: string }).cursor,
      answer: { status: 'streaming', parts: 0, text: '', epoch: 1 },
      // This instance owns every write partition: it names itself as the conversation's writer.
      writer: seqline.server.infra.partitions.holder,
    });
    for (const part of [1, 2, 2, 1, 3, 3]) {
      const reply = await request('c-cmd', { type: 'message.append', messageId: 'm-retry', part, delta: `<${part}>` });
      expect(reply.ok).toBe(true);
    }
    expect(await request('c-cmd', { type: 'message.complete', messageId: 'm-retry' })).toMatchObject({ ok: true, duplicate: false });
    expect(await request('c-cmd', { type: 'message.complete', messageId: 'm-retry' })).toMatchObject({ ok: true, duplicate: true });

    await device.until(() => device.messages.get('m-retry')?.status === 'complete');
    expect(device.text('m-retry')).toBe('<1><2><3>');
    expect(device.events.map((event) => event.event.type)).toEqual([
      'message.created',
      'message.appended',
      'message.appended',
      'message.appended',
      'message.completed',
    ]);
    await eventually(async () => (await seqline.server.infra.prisma.message.findUnique({ where: { conversationId_id: { conversationId: 'c-cmd', id: 'm-retry' } } }))?.status === 'complete');
    const row = await seqline.server.infra.prisma.message.findUnique({ where: { conversationId_id: { conversationId: 'c-cmd', id: 'm-retry' } } });
    expect(row).toMatchObject({ text: '<1><2><3>', parts: 3, status: 'complete' });
    await device.close();
  });

  it("slices an SDK agent's appends to the service's own delta limit when it is told it", async () => {
    const text = 'abcdefghij'.repeat(25); // 250 characters at once
    const told = await seqline.agent('told-limits', { limits: { deltaChars: 100 } });
    const fits = told.startMessage('c-cmd', { messageId: 'm-sliced' });
    fits.append(text);
    await fits.complete();
    const untold = await seqline.agent('default-limits');
    const refused = untold.startMessage('c-cmd', { messageId: 'm-whole' });
    refused.append(text);
    await expect(refused.complete()).rejects.toMatchObject({ code: 'DELTA_TOO_LARGE', message: 'delta is 250 characters; the limit is 100' });
    const row = (id: string) => seqline.server.infra.prisma.message.findUnique({ where: { conversationId_id: { conversationId: 'c-cmd', id } } });
    await eventually(async () => (await row('m-sliced'))?.status === 'complete');
    expect(await row('m-sliced')).toMatchObject({ text, parts: 3, status: 'complete' });
  });

  it('refuses bad commands with a code and changes nothing', async () => {
    const device = new WsDevice(seqline.server.url, 'c-cmd');
    await device.connect();
    expect(await request('c-cmd', { type: 'message.start', messageId: 'm-bad', agentId: 'raw' })).toMatchObject({ ok: true });
    const eventsBefore = (await http<{ items: unknown[] }>(seqline.server.url, 'GET', '/v1/conversations/c-cmd/events?limit=500')).body.items.length;

    const cases: [string, AgentCommand | string, string, string][] = [
      ['no-such-conversation', { type: 'message.start', messageId: 'x', agentId: 'raw' }, 'UNKNOWN_CONVERSATION', 'conversation no-such-conversation does not exist'],
      // A subject token no conversation id can be: refused as a batch line naming it is, with no lookup.
      ['__proto__', { type: 'message.start', messageId: 'x', agentId: 'raw' }, 'BAD_FRAME', '"__proto__" in the subject is not a conversation id (1-128 characters of A-Z a-z 0-9 _ -)'],
      ['x'.repeat(129), { type: 'message.start', messageId: 'x', agentId: 'raw' }, 'BAD_FRAME', `"${'x'.repeat(129)}" in the subject is not a conversation id (1-128 characters of A-Z a-z 0-9 _ -)`],
      ['c-cmd', '{not json', 'BAD_FRAME', 'command is not valid JSON'],
      ['c-cmd', JSON.stringify({ type: 'message.append', messageId: 'm-bad', part: 0, delta: 'x' }), 'VALIDATION_FAILED', 'part: Too small: expected number to be >0'],
      ['c-cmd', JSON.stringify({ type: 'message.explode', messageId: 'm-bad' }), 'BAD_FRAME', 'type: Invalid discriminator value. Expected \'message.start\' | \'message.append\' | \'message.complete\' | \'message.fail\''],
      ['c-cmd', JSON.stringify({ messageId: 'm-bad' }), 'BAD_FRAME', 'type: Invalid discriminator value. Expected \'message.start\' | \'message.append\' | \'message.complete\' | \'message.fail\''],
      ['c-cmd', '[1,2]', 'BAD_FRAME', 'command: Invalid input: expected object, received array'],
      ['c-cmd', JSON.stringify({ type: 'message.complete' }), 'VALIDATION_FAILED', 'messageId: Invalid input: expected string, received undefined'],
      ['c-cmd', { type: 'message.append', messageId: 'nope', part: 1, delta: 'x' }, 'UNKNOWN_MESSAGE', 'message nope does not exist in this conversation'],
      ['c-cmd', { type: 'message.append', messageId: 'm-bad', part: 2, delta: 'x' }, 'PART_OUT_OF_ORDER', 'part 2 of message m-bad arrived before part 1'],
      ['c-cmd', { type: 'message.append', messageId: 'm-bad', part: 1, delta: 'x'.repeat(101) }, 'DELTA_TOO_LARGE', 'delta is 101 characters; the limit is 100'],
      // Not text: Postgres could never store it.
      ['c-cmd', { type: 'message.append', messageId: 'm-bad', part: 1, delta: 'a\u0000b' }, 'VALIDATION_FAILED', 'delta: text must be well-formed Unicode, without NUL characters or unpaired surrogates'],
      ['c-cmd', { type: 'message.append', messageId: 'm-bad', part: 1, delta: 'half an emoji \ud83d' }, 'VALIDATION_FAILED', 'delta: text must be well-formed Unicode, without NUL characters or unpaired surrogates'],
      ['c-cmd', { type: 'message.start', messageId: 'm-big', agentId: 'raw', text: 'x'.repeat(301) }, 'MESSAGE_TOO_LARGE', 'message text is 301 characters; the limit is 300'],
      ['c-cmd', { type: 'message.start', messageId: 'm-bad', agentId: 'someone-else' }, 'MESSAGE_EXISTS', 'message m-bad already exists with another author'],
      ['c-cmd', 'x'.repeat(70 * 1024), 'FRAME_TOO_LARGE', 'command is 71680 bytes; the limit is 65536'],
    ];
    for (const [conversationId, command, code, message] of cases) {
      const reply = await request(conversationId, command);
      expect({ conversationId, refusal: reply.ok ? 'ok' : { code: reply.error.code, message: reply.error.message } }).toEqual({ conversationId, refusal: { code, message } });
    }
    // Fill the message to its limit, then one more character is refused.
    for (let part = 1; part <= 3; part++) {
      expect(await request('c-cmd', { type: 'message.append', messageId: 'm-bad', part, delta: 'y'.repeat(100) })).toMatchObject({ ok: true });
    }
    expect(await request('c-cmd', { type: 'message.append', messageId: 'm-bad', part: 4, delta: 'z' })).toMatchObject({ ok: false, error: { code: 'MESSAGE_TOO_LARGE' } });
    expect(await request('c-cmd', { type: 'message.fail', messageId: 'm-bad', error: 'model crashed' })).toMatchObject({ ok: true });
    expect(await request('c-cmd', { type: 'message.append', messageId: 'm-bad', part: 4, delta: 'z' })).toMatchObject({ ok: false, error: { code: 'MESSAGE_FINISHED' } });
    expect(await request('c-cmd', { type: 'message.complete', messageId: 'm-bad' })).toMatchObject({ ok: false, error: { code: 'MESSAGE_FINISHED' } });

    // Only the three appends and the failure reached the log and the device.
    const events = (await http<{ items: { event: { type: string } }[] }>(seqline.server.url, 'GET', '/v1/conversations/c-cmd/events?limit=500')).body.items;
    expect(events.length - eventsBefore).toBe(4);
    await device.until(() => device.messages.get('m-bad')?.status === 'failed');
    expect(device.text('m-bad')).toBe('y'.repeat(300));
    expect(device.violations).toEqual([]);
    await eventually(async () => (await seqline.server.infra.prisma.message.findUnique({ where: { conversationId_id: { conversationId: 'c-cmd', id: 'm-bad' } } }))?.status === 'failed');
    expect(await seqline.server.infra.prisma.message.count({ where: { id: { in: ['x', 'nope', 'm-big'] } } })).toBe(0);
    expect(await seqline.server.infra.prisma.conversation.count({ where: { id: 'no-such-conversation' } })).toBe(0);
    await device.close();
  });

  it('answers a batch to the writer its replies name line by line, in order, each as the command alone is answered', async () => {
    await createConversation(seqline.server.url, 'c-batch');
    const device = new WsDevice(seqline.server.url, 'c-batch');
    await device.connect();
    const started = await request('c-batch', { type: 'message.start', messageId: 'm-batch', agentId: 'raw' });
    expect(started).toMatchObject({ ok: true, writer: seqline.server.infra.partitions.holder });
    const batch = async (lines: string[]) => {
      const reply = await nc.request(`${seqline.settings.log.prefix}.writer.batch.${(started as { writer: string }).writer}`, lines.join('\n'), { timeout: 5_000 });
      return reply.json<{ replies: AgentReply[] } | AgentReply>();
    };
    const line = (conversationId: string, command: AgentCommand) => `${conversationId} ${JSON.stringify(command)}`;
    const append = (part: number, delta: string): AgentCommand => ({ type: 'message.append', messageId: 'm-batch', part, delta });

    const answered = await batch([
      line('c-batch', append(1, 'one ')),
      'c-batch',
      line('c-batch', { type: 'message.start', messageId: 'm-batch-2', agentId: 'raw' }),
      'c-batch {not json',
      line('no-such-conversation', append(1, 'x')),
      line('c-batch', append(2, 'two')),
      line('c-batch', append(1, 'one ')),
      line('c-batch', append(3, 'x'.repeat(101))),
    ]);
    expect('replies' in answered && answered.replies.map((reply) => (reply.ok ? (reply.duplicate ? 'duplicate' : 'written') : reply.error))).toEqual([
      'written',
      { code: 'BAD_FRAME', message: 'command 2 of the batch does not start with a conversation id and a space' },
      { code: 'VALIDATION_FAILED', message: 'message.start cannot be batched: send it on its own' },
      { code: 'BAD_FRAME', message: 'command is not valid JSON' },
      { code: 'UNKNOWN_CONVERSATION', message: expect.any(String) as string },
      'written',
      'duplicate',
      { code: 'DELTA_TOO_LARGE', message: expect.any(String) as string },
    ]);
    // Replies name the writer, as single replies do.
    expect((answered as { replies: AgentReply[] }).replies[0]).toMatchObject({ ok: true, writer: seqline.server.infra.partitions.holder });

    expect(await batch(Array.from({ length: 65 }, (_, i) => line('c-batch', append(3 + i, 'x'))))).toEqual({
      ok: false,
      error: { code: 'VALIDATION_FAILED', message: 'a batch holds at most 64 commands' },
    });
    expect(await batch([line('c-batch', { type: 'message.complete', messageId: 'm-batch' })])).toMatchObject({ replies: [{ ok: true, duplicate: false }] });

    await device.until(() => device.messages.get('m-batch')?.status === 'complete');
    expect(device.text('m-batch')).toBe('one two');
    expect(device.events.map((event) => event.event.type)).toEqual(['message.created', 'message.appended', 'message.appended', 'message.completed']);
    expect(device.violations).toEqual([]);
    expect(await seqline.server.infra.prisma.message.count({ where: { id: 'm-batch-2' } })).toBe(0);
    await device.close();
  });

  it('keeps writing a conversation while a stray command waits to be looked at again', async () => {
    await createConversation(seqline.server.url, 'c-stray');
    expect(await request('c-stray', { type: 'message.start', messageId: 'm-live', agentId: 'raw' })).toMatchObject({ ok: true });
    // An append to a message that does not exist is looked at again for about 1.4 s before it is refused.
    const order: string[] = [];
    const stray = request('c-stray', { type: 'message.append', messageId: 'm-never', part: 1, delta: 'x' }).then((reply) => {
      order.push('stray refused');
      return reply;
    });
    await new Promise((resolve) => setTimeout(resolve, 150));
    for (let part = 1; part <= 3; part++) {
      expect(await request('c-stray', { type: 'message.append', messageId: 'm-live', part, delta: `<${part}>` })).toMatchObject({ ok: true, duplicate: false });
    }
    order.push('appends acknowledged');
    expect(await stray).toMatchObject({ ok: false, error: { code: 'UNKNOWN_MESSAGE' } });
    expect(order).toEqual(['appends acknowledged', 'stray refused']);
  });

  it('looks again at a command naming a producer epoch the log has not reached, instead of fencing it at once', async () => {
    // As after a leader election: a takeover was acknowledged, and the first read of the new leader lacks it.
    await createConversation(seqline.server.url, 'c-epoch');
    expect(await request('c-epoch', { type: 'message.start', messageId: 'm-taken', agentId: 'raw', producerId: 'first' })).toMatchObject({ ok: true, answer: { epoch: 1 } });
    expect(await request('c-epoch', { type: 'message.append', messageId: 'm-taken', part: 1, delta: 'a', epoch: 1 })).toMatchObject({ ok: true });
    const early = request('c-epoch', { type: 'message.append', messageId: 'm-taken', part: 2, delta: 'b', epoch: 2 });
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(await request('c-epoch', { type: 'message.start', messageId: 'm-taken', agentId: 'raw', producerId: 'second' })).toMatchObject({ ok: true, answer: { epoch: 2, parts: 1 } });
    expect(await early).toMatchObject({ ok: true, duplicate: false });
    // The first producer is fenced, at once and for good.
    expect(await request('c-epoch', { type: 'message.append', messageId: 'm-taken', part: 3, delta: 'c', epoch: 1 })).toMatchObject({ ok: false, error: { code: 'FENCED' } });
    // An epoch no takeover ever gave is refused once the log has had time to show it.
    expect(await request('c-epoch', { type: 'message.append', messageId: 'm-taken', part: 3, delta: 'c', epoch: 7 })).toMatchObject({ ok: false, error: { code: 'FENCED' } });
    const history = await http<{ items: { id: string; text: string; status: string }[] }>(seqline.server.url, 'GET', '/v1/conversations/c-epoch/messages');
    expect(history.body.items.map(({ id, text, status }) => ({ id, text, status }))).toEqual([{ id: 'm-taken', text: 'ab', status: 'streaming' }]);
  });
});

/** With the default limits: an answer whose state no longer fits in one NATS reply. */
describe('a reply larger than a NATS message', () => {
  const seqline = useSeqline();
  let nc: NatsConnection;
  const request = async (conversationId: string, command: AgentCommand): Promise<AgentReply> =>
    (await nc.request(`${seqline.settings.log.prefix}.agent.${conversationId}`, JSON.stringify(command), { timeout: 10_000 })).json<AgentReply>();
  const row = (conversationId: string, id: string) => seqline.server.infra.prisma.message.findUnique({ where: { conversationId_id: { conversationId, id } } });

  beforeAll(async () => {
    nc = await connect({ servers: seqline.settings.nats.url });
    await createConversation(seqline.server.url, 'c-huge');
    await createConversation(seqline.server.url, 'c-escaped');
  });
  afterAll(async () => nc.close());

  it('goes without the blocks, which the text repeats, and the producer goes on', async () => {
    // 13 appends of 16,384 three-byte characters to a text block: 639 KiB of text, repeated in the block, so the whole reply would pass 1 MiB.
    const delta = '語'.repeat(16_384);
    const start = { type: 'message.start', messageId: 'm-huge', agentId: 'raw', producerId: 'p1' } as const;
    expect(await request('c-huge', start)).toMatchObject({ ok: true, duplicate: false });
    for (let part = 1; part <= 13; part++) {
      expect(await request('c-huge', { type: 'message.append', messageId: 'm-huge', part, delta, block: { type: 'text', id: 't1' } })).toMatchObject({ ok: true });
    }
    const restarted = await request('c-huge', start);
    expect(restarted.ok && restarted.answer).toEqual({ status: 'streaming', parts: 13, text: delta.repeat(13), blocksOmitted: true, producerId: 'p1', epoch: 1 });

    expect(await request('c-huge', { type: 'message.append', messageId: 'm-huge', part: 14, delta: '終', block: { type: 'text', id: 't1' } })).toMatchObject({ ok: true, duplicate: false });
    expect(await request('c-huge', { type: 'message.complete', messageId: 'm-huge' })).toMatchObject({ ok: true, duplicate: false });
    await eventually(async () => (await row('c-huge', 'm-huge'))?.status === 'complete');
    expect(await row('c-huge', 'm-huge')).toMatchObject({ text: delta.repeat(13) + '終', parts: 14 });
  });

  it('is refused MESSAGE_TOO_LARGE when the text alone is too large, and nothing changes', async () => {
    // Control characters take six bytes each in JSON: 220,000 of them are 1.3 MB.
    const delta = '\u0001'.repeat(10_000);
    const start = { type: 'message.start', messageId: 'm-escaped', agentId: 'raw', producerId: 'p1' } as const;
    expect(await request('c-escaped', start)).toMatchObject({ ok: true, duplicate: false });
    for (let part = 1; part <= 22; part++) {
      expect(await request('c-escaped', { type: 'message.append', messageId: 'm-escaped', part, delta })).toMatchObject({ ok: true });
    }
    const restarted = await request('c-escaped', start);
    expect(restarted).toMatchObject({ ok: false, error: { code: 'MESSAGE_TOO_LARGE' } });
    expect(!restarted.ok && restarted.error.message).toMatch(/^the answer so far is \d+ bytes as a reply, more than this NATS server's max_payload \(1048576 bytes\) allows; read it over REST$/);

    // A take-over is refused the same way, before its claim is written: the answer stays its producer's.
    const takeover = await request('c-escaped', { ...start, producerId: 'p2' });
    expect(takeover).toMatchObject({ ok: false, error: { code: 'MESSAGE_TOO_LARGE' } });
    expect(!takeover.ok && takeover.error.message).toMatch(/^the answer so far is \d+ bytes as a reply, more than this NATS server's max_payload \(1048576 bytes\) allows; read it over REST$/);

    // The instance goes on serving, and the producer with its known part number and epoch.
    expect(await request('c-escaped', { type: 'message.append', messageId: 'm-escaped', part: 23, delta: 'end', epoch: 1 })).toMatchObject({ ok: true, duplicate: false });
    expect(await request('c-escaped', { type: 'message.complete', messageId: 'm-escaped', epoch: 1 })).toMatchObject({ ok: true, duplicate: false });
    await eventually(async () => (await row('c-escaped', 'm-escaped'))?.status === 'complete');
    expect(await row('c-escaped', 'm-escaped')).toMatchObject({ text: delta.repeat(22) + 'end', parts: 23 });
  });
});
