import { jetstream } from '@nats-io/jetstream';
import type { ConversationEvent, Page } from '@seqline/protocol';
import { createConversation, eventually, http, useSeqline } from '@seqline/testing';

/** Admin REST refuses what it cannot read exactly, and changes nothing when it does. */
describe('admin REST input', () => {
  const seqline = useSeqline();
  const url = () => seqline.server.url;
  const conversationIds = async (): Promise<string[]> => (await http<{ items: { id: string }[] }>(url(), 'GET', '/v1/conversations?limit=500')).body.items.map((item) => item.id);
  const raw = (method: string, path: string, body: string, contentType: string) => fetch(`${url()}${path}`, { method, headers: { 'content-type': contentType }, body });

  it('refuses a body not sent as JSON with BAD_FRAME, and creates nothing', async () => {
    const before = await conversationIds();
    for (const contentType of ['application/x-www-form-urlencoded', 'text/plain']) {
      const response = await raw('POST', '/v1/conversations', '{"id":"trip"}', contentType);
      expect({ status: response.status, body: await response.json() }).toEqual({
        status: 400,
        body: { code: 'BAD_FRAME', message: `the body must be JSON, sent with Content-Type: application/json (got ${contentType})` },
      });
    }
    const latin1 = await raw('POST', '/v1/conversations', '{"id":"trip"}', 'application/json; charset=latin1');
    expect({ status: latin1.status, code: ((await latin1.json()) as { code: string }).code }).toEqual({ status: 400, code: 'BAD_FRAME' });
    // Half of an emoji's bytes: not UTF-8, refused rather than stored as U+FFFD.
    const half = Buffer.concat([Buffer.from('{"id":"trip-'), Buffer.from([0xf0, 0x9f]), Buffer.from('"}')]);
    const notUtf8 = await fetch(`${url()}/v1/conversations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: half });
    expect({ status: notUtf8.status, body: await notUtf8.json() }).toEqual({ status: 400, body: { code: 'BAD_FRAME', message: 'body is not valid UTF-8' } });
    expect(await conversationIds()).toEqual(before);
  });

  it('still creates a conversation with a new id from a request without a body', async () => {
    const created = await fetch(`${url()}/v1/conversations`, { method: 'POST' });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };
    expect(await conversationIds()).toContain(id);
  });

  it('refuses fields it does not know, naming them, rather than doing the request with defaults', async () => {
    await createConversation(url(), 'strict');
    const before = await conversationIds();
    expect(await http(url(), 'POST', '/v1/conversations', { conversationId: 'trip' })).toEqual({ status: 400, body: { code: 'VALIDATION_FAILED', message: expect.stringContaining('conversationId') } });
    expect(await http(url(), 'POST', '/v1/conversations/strict/messages', { messageId: 'q1', text: 'hi', author: 'u-42' })).toEqual({
      status: 400,
      body: { code: 'VALIDATION_FAILED', message: expect.stringContaining('author') },
    });
    expect(await conversationIds()).toEqual(before);
    expect((await http<{ items: unknown[] }>(url(), 'GET', '/v1/conversations/strict/messages')).body.items).toEqual([]);
  });

  it('names the parameter a refusal is about, in the path as in the query', async () => {
    expect(await http(url(), 'GET', '/v1/conversations?limit=0')).toEqual({ status: 400, body: { code: 'VALIDATION_FAILED', message: expect.stringMatching(/^limit: /) } });
    expect(await http(url(), 'GET', '/v1/conversations/has%20spaces')).toEqual({ status: 400, body: { code: 'VALIDATION_FAILED', message: expect.stringMatching(/^id: /) } });
  });

  it('answers an unknown conversation 404 whatever the cursor, on both history routes', async () => {
    for (const route of ['messages', 'events']) {
      expect(await http(url(), 'GET', `/v1/conversations/nope/${route}?after=nope!`)).toEqual({ status: 404, body: { code: 'UNKNOWN_CONVERSATION', message: 'conversation nope does not exist' } });
    }
  });

  it('reads an empty `after` as no cursor, on every paginated route', async () => {
    await createConversation(url(), 'empty-after');
    await http(url(), 'POST', '/v1/conversations/empty-after/messages', { messageId: 'q1', text: 'hello' });
    // Messages are read from Postgres: both reads must see the message persisted.
    await eventually(async () => (await http<{ items: unknown[] }>(url(), 'GET', '/v1/conversations/empty-after/messages')).body.items.length === 1);
    for (const path of ['/v1/conversations', '/v1/conversations/empty-after/events', '/v1/conversations/empty-after/messages']) {
      const [without, empty] = [await http(url(), 'GET', path), await http(url(), 'GET', `${path}?after=`)];
      expect(empty).toEqual(without);
      expect(empty.status).toBe(200);
    }
  });

  it('pages `/events` past an undecodable event, leaving it out, without ending early', async () => {
    await createConversation(url(), 'ev-bad');
    await http(url(), 'POST', '/v1/conversations/ev-bad/messages', { messageId: 'q1', text: 'before' });
    const { last } = await lastEvent('ev-bad');
    const poison = await jetstream(seqline.server.infra.stream.nc).publish(`${seqline.settings.log.prefix}.log.ev-bad`, 'not json {');
    await http(url(), 'POST', '/v1/conversations/ev-bad/messages', { messageId: 'q2', text: 'after' });

    // Two events a page: the first page ends on the undecodable event, and the next goes on after it.
    const first = await http<Page<ConversationEvent>>(url(), 'GET', '/v1/conversations/ev-bad/events?limit=2');
    expect(first.status).toBe(200);
    expect(first.body.items.map((event) => event.cursor)).toEqual([last]);
    expect(first.body.next).toBe(`${seqline.server.infra.stream.epoch}-${poison.seq}`);
    const second = await http<Page<ConversationEvent>>(url(), 'GET', `/v1/conversations/ev-bad/events?limit=2&after=${first.body.next}`);
    expect(second.status).toBe(200);
    expect(second.body.items.map((event) => [event.event.type, event.prev])).toEqual([['message.created', `${seqline.server.infra.stream.epoch}-${poison.seq}`]]);
    expect(second.body.next).toBeNull();
    // A page that ends on the event right before it: its `next` is taken too.
    const single = await http<Page<ConversationEvent>>(url(), 'GET', `/v1/conversations/ev-bad/events?limit=1&after=${first.body.items[0]!.prev}`);
    expect(single.body).toEqual({ items: [expect.objectContaining({ cursor: last })], next: last });
    const past = await http<Page<ConversationEvent>>(url(), 'GET', `/v1/conversations/ev-bad/events?after=${last}`);
    expect(past.status).toBe(200);
    expect(past.body.items.map((event) => event.event.type)).toEqual(['message.created']);
  });

  it('refuses a query parameter it does not know rather than answering the first page again', async () => {
    expect(await http(url(), 'GET', '/v1/conversations?cursor=abc')).toEqual({ status: 400, body: { code: 'VALIDATION_FAILED', message: expect.stringContaining('cursor') } });
  });

  it('takes no conversation id __proto__, which a token could never grant', async () => {
    expect(await http(url(), 'POST', '/v1/conversations', { id: '__proto__' })).toEqual({ status: 400, body: { code: 'VALIDATION_FAILED', message: 'id: ids are 1-128 characters of A-Z a-z 0-9 _ - (not __proto__)' } });
    expect((await http(url(), 'GET', '/v1/conversations/__proto__')).status).toBe(400);
  });

  async function lastEvent(id: string): Promise<{ last: string }> {
    const page = await http<Page<ConversationEvent>>(url(), 'GET', `/v1/conversations/${id}/events`);
    return { last: page.body.items.at(-1)!.cursor };
  }
});
