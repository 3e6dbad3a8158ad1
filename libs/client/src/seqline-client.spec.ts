import { jest } from '@jest/globals';
import type { LogEvent } from '../../protocol/src/events.js';
import type { Message } from '../../protocol/src/message.js';
import { MemoryCursorStore, type CursorStore, type StoredConversation } from './cursor-store.js';
import { SeqlineClient, type SeqlineClientOptions } from './seqline-client.js';
import type { SocketLike } from './socket.js';
import type { Subscription } from './subscription.js';

const CLOSED = 3;
const at = '2026-01-01T00:00:00.000Z';

/** A WebSocket whose server is the test: it records the frames the client sends and delivers what the test says. */
class FakeSocket implements SocketLike {
  readyState = 0;
  readonly createdAt = Date.now();
  endedAt: number | undefined;
  /** Every frame the client sent, with the (fake) time it was sent. */
  readonly sent: { at: number; frame: Record<string, unknown> }[] = [];
  onopen: ((event: unknown) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;

  constructor(readonly url: string) {}

  send(data: string): void {
    this.sent.push({ at: Date.now(), frame: JSON.parse(data) as Record<string, unknown> });
  }

  close(code = 1000): void {
    if (this.readyState === CLOSED) return;
    this.readyState = CLOSED;
    // Like a real socket, the close event comes later.
    setTimeout(() => this.onclose?.({ code, reason: '' }), 0);
  }

  /** The server completes the upgrade. */
  accept(): void {
    this.readyState = 1;
    this.onopen?.({});
  }

  deliver(frame: Record<string, unknown>): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }

  /** The server closes the connection. */
  end(code: number): void {
    this.readyState = CLOSED;
    this.endedAt = Date.now();
    this.onclose?.({ code, reason: '' });
  }

  frames(): Record<string, unknown>[] {
    return this.sent.map((sent) => sent.frame);
  }
}

function start(options: Partial<SeqlineClientOptions> = {}) {
  const sockets: FakeSocket[] = [];
  class WebSocket extends FakeSocket {
    constructor(url: string) {
      super(url);
      sockets.push(this);
    }
  }
  const client = new SeqlineClient({ url: 'http://seqline.test', WebSocket, ...options });
  return {
    client,
    sockets,
    last: () => sockets.at(-1)!,
    /** Sockets the client has not closed and the server has not ended. */
    held: () => sockets.filter((socket) => socket.readyState !== CLOSED),
    /** Milliseconds from each connection's end to the next attempt. */
    waits: () => sockets.slice(1).map((socket, i) => socket.createdAt - sockets[i]!.endedAt!),
  };
}

/** The connection drops, the client reconnects and the server first answers: what waited is sent again now. */
async function reconnect(h: ReturnType<typeof start>): Promise<void> {
  h.last().end(1006);
  await jest.advanceTimersToNextTimerAsync();
  await settle();
  h.last().accept();
  h.last().deliver({ type: 'pong' });
}

/** Lets pending promises (a token, a store load) run. */
async function settle(): Promise<void> {
  await jest.advanceTimersByTimeAsync(0);
}

function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Whether a promise has settled yet, without waiting for it. */
function track<T>(promise: Promise<T>): { state: 'pending' | 'resolved' | 'rejected'; value?: unknown } {
  const outcome: { state: 'pending' | 'resolved' | 'rejected'; value?: unknown } = { state: 'pending' };
  promise.then(
    (value) => Object.assign(outcome, { state: 'resolved', value }),
    (error: unknown) => Object.assign(outcome, { state: 'rejected', value: error }),
  );
  return outcome;
}

const answer = (text: string, parts: number): Message => ({ id: 'm1', author: { role: 'agent', id: 'a' }, status: 'streaming', text, parts, createdAt: at, updatedAt: at, cursor: 'e1-3' });

function event(cursor: string, prev: string, logEvent: LogEvent | Record<string, unknown>): Record<string, unknown> {
  return { type: 'event', conversationId: 'c1', cursor, prev, event: logEvent };
}

const appended = (part: number, delta: string) => ({ type: 'message.appended', messageId: 'm1', part, delta, at });

/** A client following c1, its snapshot received at cursor e1-3. */
/** A client whose store holds c1 at `cursor` (an answer 'He'), subscribed to it over an accepted socket, recording the kinds of change it hears. */
async function fromStore(cursor: string) {
  const store = new MemoryCursorStore();
  await store.save('c1', { cursor, messages: [answer('He', 1)] });
  const h = start({ store });
  const conversation = h.client.subscribe('c1');
  const changes: string[] = [];
  conversation.on((change) => changes.push(change.type));
  await settle();
  h.last().accept();
  return { h, store, conversation, changes };
}

async function following(options: Partial<SeqlineClientOptions> = {}) {
  const h = start(options);
  const conversation = h.client.subscribe('c1');
  await settle();
  h.last().accept();
  h.last().deliver({ type: 'snapshot', conversationId: 'c1', cursor: 'e1-3', messages: [answer('He', 1)] });
  return { h, conversation };
}

beforeEach(() => {
  jest.useFakeTimers({ now: 0 });
  // Back-off jitter at its ceiling, so every wait is exact.
  jest.spyOn(Math, 'random').mockReturnValue(1);
});

afterEach(() => {
  jest.useRealTimers();
  jest.restoreAllMocks();
});

describe('SeqlineClient holds one socket at a time', () => {
  it('connect() during a reconnect delay opens one socket, and the pending reconnect opens none', async () => {
    const h = start();
    await settle();
    h.last().accept();
    h.last().end(1006);
    h.client.connect();
    await settle();
    expect(h.sockets).toHaveLength(2);
    h.last().accept();
    await jest.advanceTimersByTimeAsync(20_000);
    expect(h.sockets).toHaveLength(2);
    expect(h.held()).toEqual([h.sockets[1]]);
  });

  it('connect() while the token is being fetched opens no second socket', async () => {
    const tokens: ((token: string) => void)[] = [];
    const h = start({ token: () => new Promise<string>((resolve) => tokens.push(resolve)) });
    h.client.connect();
    expect(h.client.state).toBe('connecting');
    for (const resolve of tokens) resolve('t');
    await settle();
    expect(tokens).toHaveLength(1);
    expect(h.sockets).toHaveLength(1);
  });

  it('disconnect() then connect() while the token is being fetched opens one socket', async () => {
    const tokens: ((token: string) => void)[] = [];
    const h = start({ token: () => new Promise<string>((resolve) => tokens.push(resolve)) });
    h.client.disconnect();
    h.client.connect();
    expect(h.client.state).toBe('connecting');
    for (const resolve of tokens) resolve('t');
    await settle();
    expect(h.sockets).toHaveLength(1);
    h.last().accept();
    expect(h.client.state).toBe('live');
  });
});

describe('SeqlineClient reconnect back-off', () => {
  /** Plays a server that refuses each connection right after the upgrade, `times` times. */
  async function refuse(h: ReturnType<typeof start>, times: number, refusal: (socket: FakeSocket) => void): Promise<void> {
    await settle();
    for (let i = 0; i < times; i++) {
      h.last().accept();
      refusal(h.last());
      await jest.advanceTimersToNextTimerAsync();
      await settle();
    }
  }

  it('a token refused after every upgrade (4401) waits 250, 500, 1000, 2000 ms, not 250 ms forever', async () => {
    const h = start({ token: () => 'refused' });
    await refuse(h, 4, (socket) => {
      socket.deliver({ type: 'error', code: 'UNAUTHORIZED', message: 'token refused: signature' });
      socket.end(4401);
    });
    expect(h.waits()).toEqual([250, 500, 1000, 2000]);
  });

  it('too many connections (4429) tries again only after the longest wait', async () => {
    const h = start();
    await refuse(h, 3, (socket) => socket.end(4429));
    expect(h.waits()).toEqual([15_000, 15_000, 15_000]);
  });

  it('an expired token (4402) reconnects at once after a working session, and backs off while the fresh token is expired too', async () => {
    // A fake server that never answers pings: the heartbeat would end this quiet session first.
    const h = start({ token: () => 'expired', heartbeat: false });
    await settle();
    h.last().accept();
    await jest.advanceTimersByTimeAsync(60_000);
    h.last().end(4402);
    await jest.advanceTimersToNextTimerAsync();
    await refuse(h, 3, (socket) => {
      socket.deliver({ type: 'error', code: 'UNAUTHORIZED', message: 'token expired' });
      socket.end(4402);
    });
    expect(h.waits()).toEqual([100, 500, 1000, 2000]);
  });

  it('a token provider that fails is asked again with back-off, and the client connects once it answers', async () => {
    let calls = 0;
    const asked: number[] = [];
    const h = start({
      token: () => {
        asked.push(Date.now());
        return ++calls <= 3 ? Promise.reject(new Error('identity service down')) : Promise.resolve('t');
      },
    });
    await jest.advanceTimersByTimeAsync(10_000);
    expect(asked).toEqual([0, 250, 750, 1750]);
    expect(h.sockets).toHaveLength(1);
    expect(h.last().url).toContain('token=t');
    h.last().accept();
    expect(h.client.state).toBe('live');
  });

  it('a session the server answered resets the back-off', async () => {
    const h = start({ token: () => 'refused' });
    h.client.subscribe('c1');
    await refuse(h, 3, (socket) => socket.end(4401));
    h.last().accept();
    h.last().deliver({ type: 'snapshot', conversationId: 'c1', cursor: 'e1-0', messages: [] });
    h.last().end(1006);
    await jest.advanceTimersToNextTimerAsync();
    expect(h.waits()).toEqual([250, 500, 1000, 250]);
  });
});

describe('SeqlineClient subscriptions closed while their state loads', () => {
  /** A store whose loads finish when the test says. */
  function slowStore(): CursorStore & { loads: ((state: StoredConversation | undefined) => void)[] } {
    const memory = new MemoryCursorStore();
    const loads: ((state: StoredConversation | undefined) => void)[] = [];
    return {
      loads,
      load: () => {
        const load = deferred<StoredConversation | undefined>();
        loads.push(load.resolve);
        return load.promise;
      },
      save: (id, state) => memory.save(id, state),
      remove: (id) => memory.remove(id),
    };
  }

  it('loaded while the server has not answered yet wait with the others: each sent once, after its first answer', async () => {
    const store = slowStore();
    const h = start({ store });
    const ids = Array.from({ length: 80 }, (_, i) => `c${i}`);
    for (const id of ids) h.client.subscribe(id);
    await settle();
    h.last().accept();
    expect(h.last().frames().map((frame) => frame.type)).toEqual(['ping']);
    for (const load of store.loads) load(undefined);
    await settle();
    expect(h.last().frames().map((frame) => frame.type)).toEqual(['ping']);
    h.last().deliver({ type: 'pong' });
    const subscribed = h.last().frames().filter((frame) => frame.type === 'subscribe').map((frame) => frame.conversationId);
    expect(subscribed).toEqual(ids);
  });

  it('are never sent to the server', async () => {
    const store = slowStore();
    const h = start({ store });
    await settle();
    h.last().accept();
    h.client.subscribe('c1').close();
    store.loads[0]!({ cursor: 'e1-5', messages: [] });
    await settle();
    expect(h.last().frames()).toEqual([]);
  });

  it('leave a new subscription to the same conversation as the only one the server hears of', async () => {
    const store = slowStore();
    const h = start({ store });
    await settle();
    h.last().accept();
    h.client.subscribe('c1').close();
    const again = h.client.subscribe('c1');
    store.loads[0]!({ cursor: 'e1-5', messages: [answer('Hel', 1)] });
    store.loads[1]!({ cursor: 'e1-9', messages: [answer('Hello', 2)] });
    await settle();
    expect(h.last().frames()).toEqual([{ type: 'subscribe', conversationId: 'c1', after: 'e1-9' }]);
    expect(again.messages.map((m) => m.text)).toEqual(['Hello']);
  });
});

describe('SeqlineClient with an event that follows the cursor but does not fit the view', () => {
  const partThree = { type: 'message.appended', messageId: 'm1', part: 3, delta: 'lo', at } as const;

  it('starts over from a snapshot instead of replaying from the same cursor', async () => {
    // The stored text lost part 2, though its cursor is after it.
    const { h, store, conversation, changes } = await fromStore('e1-5');
    h.last().deliver({ type: 'subscribed', conversationId: 'c1', cursor: 'e1-5', head: 'e1-6' });
    h.last().deliver(event('e1-6', 'e1-5', partThree));
    expect(h.last().frames()).toEqual([
      { type: 'subscribe', conversationId: 'c1', after: 'e1-5' },
      { type: 'subscribe', conversationId: 'c1' },
    ]);
    expect(store.load('c1')).toBeUndefined();
    h.last().deliver({ type: 'snapshot', conversationId: 'c1', cursor: 'e1-6', messages: [answer('Hello', 3)] });
    expect(conversation.messages.map((m) => m.text)).toEqual(['Hello']);
    expect(conversation.cursor).toBe('e1-6');
    expect(changes).toEqual(['reset', 'reset']);
    expect(h.client.state).toBe('live');
  });

  it('backs off when the snapshot does not fit either, until the view gets past that event', async () => {
    const h = start();
    h.client.subscribe('c1');
    await settle();
    const socket = h.last();
    socket.accept();
    // A snapshot that cannot be right: the event after it appends part 3 to a message with 1 part.
    const misfit = (): void => {
      socket.deliver({ type: 'snapshot', conversationId: 'c1', cursor: 'e1-5', messages: [answer('He', 1)] });
      socket.deliver(event('e1-6', 'e1-5', partThree));
    };
    for (let i = 0; i < 3; i++) {
      misfit();
      await jest.advanceTimersByTimeAsync(20_000);
    }
    const snapshotsAskedAt = socket.sent.filter((sent) => sent.frame.type === 'subscribe' && !('after' in sent.frame)).map((sent) => sent.at);
    // The first on subscribing, then the repairs: at once, then 250 and 500 ms after each misfit.
    expect(snapshotsAskedAt).toEqual([0, 0, 20_000 + 250, 40_000 + 500]);

    // A snapshot past the event that did not fit: the next misfit is repaired at once again.
    socket.deliver({ type: 'snapshot', conversationId: 'c1', cursor: 'e1-6', messages: [answer('Hello', 3)] });
    socket.deliver(event('e1-8', 'e1-6', { type: 'message.appended', messageId: 'm1', part: 5, delta: '!', at }));
    expect(socket.frames().at(-1)).toEqual({ type: 'subscribe', conversationId: 'c1' });
    expect(socket.sent.at(-1)!.at).toBe(60_000);
  });
});

describe('SeqlineClient with an event type it does not know', () => {
  it('advances the cursor, keeps the messages, and saves them', async () => {
    const store = new MemoryCursorStore();
    const h = start({ store, saveIntervalMs: 10 });
    const conversation = h.client.subscribe('c1');
    await settle();
    h.last().accept();
    h.last().deliver({ type: 'snapshot', conversationId: 'c1', cursor: 'e1-5', messages: [answer('Hel', 1)] });
    h.last().deliver(event('e1-6', 'e1-5', { type: 'message.reacted', messageId: 'm1', emoji: '+1', at }));
    h.last().deliver(event('e1-7', 'e1-6', { type: 'message.reacted', messageId: 'never-seen', emoji: '+1', at }));
    h.last().deliver(event('e1-8', 'e1-7', { type: 'message.appended', messageId: 'm1', part: 2, delta: 'lo', at }));
    expect(conversation.cursor).toBe('e1-8');
    expect(conversation.messages.map((m) => [m.id, m.text])).toEqual([['m1', 'Hello']]);
    await jest.advanceTimersByTimeAsync(10);
    expect(store.load('c1')).toMatchObject({ cursor: 'e1-8', messages: [{ id: 'm1', text: 'Hello' }] });
    // Only the subscribe: no repair was asked for.
    expect(h.last().frames()).toEqual([{ type: 'subscribe', conversationId: 'c1' }]);
  });
});

describe('SeqlineClient listeners', () => {
  it('read `live` as of the change they are told of: a catch-up that ends on an event is live in its listener', async () => {
    const { h, conversation } = await following();
    h.last().end(1006);
    await jest.advanceTimersToNextTimerAsync();
    await settle();
    h.last().accept();
    const seen: [string, boolean][] = [];
    conversation.on((change) => seen.push([change.type === 'event' ? change.event.cursor : change.type, conversation.live]));
    // Resumed from e1-3; the server's head is e1-5: live once the device has applied it.
    h.last().deliver({ type: 'subscribed', conversationId: 'c1', head: 'e1-5' });
    expect(conversation.live).toBe(false);
    h.last().deliver(event('e1-4', 'e1-3', appended(2, 'll')));
    h.last().deliver(event('e1-5', 'e1-4', appended(3, 'o')));
    expect(seen).toEqual([
      ['e1-4', false],
      ['e1-5', true],
    ]);
  });
});

describe('SeqlineClient and the code that listens to it', () => {
  it('opens one socket when a listener reconnects on `offline`, not one of its own and one of the back-off', async () => {
    const { h } = await following();
    h.client.onStateChange((state) => {
      if (state === 'offline') h.client.connect();
    });
    h.last().end(1006);
    await jest.advanceTimersByTimeAsync(0);
    expect(h.sockets).toHaveLength(2);
    h.last().accept();
    await jest.advanceTimersByTimeAsync(20_000);
    expect(h.sockets).toHaveLength(2);
    expect(h.sockets[1]!.readyState).not.toBe(CLOSED);
  });

  it('gives a listener that subscribes again when a subscription ends a new subscription, not the ended one', async () => {
    const { h, conversation } = await following();
    let again: Subscription | undefined;
    conversation.on((change) => {
      if (change.type === 'ended') again = h.client.subscribe('c1');
    });
    conversation.close();
    expect(again).toBeDefined();
    expect(again).not.toBe(conversation);
  });

  it('settles three pending `next()` calls, one with the event that came and the others at the end', async () => {
    const { h, conversation } = await following();
    const events = conversation.events();
    const pending = [events.next(), events.next(), events.next()];
    h.last().deliver(event('e1-4', 'e1-3', appended(2, 'llo')));
    await settle();
    conversation.close();
    const settled = await Promise.all(pending);
    expect(settled.map((result) => result.done)).toEqual([false, true, true]);
  });

  it('is not live after subscribing anew until the server answers, whatever events sent for the earlier subscription still arrive', async () => {
    const { h, conversation } = await following();
    conversation.close();
    const again = h.client.subscribe('c1');
    await settle();
    // Sent to the earlier subscription before the server read its unsubscribe.
    h.last().deliver(event('e1-4', 'e1-3', appended(2, 'y')));
    expect({ client: h.client.state, live: again.live }).toEqual({ client: 'catching-up', live: false });
    h.last().deliver({ type: 'subscribed', conversationId: 'c1', cursor: 'e1-3', head: 'e1-5' });
    h.last().deliver(event('e1-4', 'e1-3', appended(2, 'y')));
    expect(again.live).toBe(false);
    h.last().deliver(event('e1-5', 'e1-4', appended(3, 'z')));
    expect({ client: h.client.state, live: again.live, text: again.messages[0]?.text }).toEqual({ client: 'live', live: true, text: 'Heyz' });
  });

  it('tells listeners when a subscribe is answered with a head its stored view had reached: live, with no event to show it', async () => {
    const { h, conversation, changes } = await fromStore('e1-3');
    await settle();
    expect(conversation.live).toBe(false);
    h.last().deliver({ type: 'subscribed', conversationId: 'c1', cursor: 'e1-3', head: 'e1-3' });
    // `reset`: the stored view loaded.
    expect({ live: conversation.live, state: h.client.state, changes }).toEqual({ live: true, state: 'live', changes: ['reset', 'live'] });
  });

  it('saves the cursor of a subscription opened after a listener closed the earlier one on an event', async () => {
    const store = new MemoryCursorStore();
    const { h, conversation } = await following({ store });
    conversation.on((change) => {
      if (change.type === 'event') conversation.close();
    });
    h.last().deliver(event('e1-4', 'e1-3', appended(2, 'y')));
    h.client.subscribe('c1');
    await settle();
    h.last().deliver({ type: 'subscribed', conversationId: 'c1', cursor: 'e1-4', head: 'e1-5' });
    h.last().deliver(event('e1-5', 'e1-4', appended(3, 'z')));
    await jest.advanceTimersByTimeAsync(1_000);
    expect((await store.load('c1'))?.cursor).toBe('e1-5');
  });

  it('wakes every pending `next()` of an events() loop when the subscription ends', async () => {
    const { conversation } = await following();
    const events = conversation.events();
    const first = events.next();
    const second = events.next();
    conversation.close();
    expect(await Promise.all([first, second])).toEqual([
      { done: true, value: undefined },
      { done: true, value: undefined },
    ]);
  });
});

describe('SeqlineClient notices a connection that died without a close', () => {
  it('pings after 25 s of silence; with no answer in 10 s it reconnects and resumes from its cursor', async () => {
    const { h, conversation } = await following();
    await jest.advanceTimersByTimeAsync(25_000);
    expect(h.sockets[0]!.frames().at(-1)).toEqual({ type: 'ping' });
    expect(h.client.state).toBe('live');
    await jest.advanceTimersByTimeAsync(10_000);
    expect(h.client.state).not.toBe('live');
    expect(h.sockets[0]!.readyState).toBe(CLOSED);
    // The session worked, so the first reconnect waits the shortest back-off.
    await jest.advanceTimersByTimeAsync(250);
    expect(h.sockets).toHaveLength(2);
    h.last().accept();
    expect(h.last().frames()).toEqual([{ type: 'subscribe', conversationId: 'c1', after: 'e1-3' }]);
    h.last().deliver({ type: 'subscribed', conversationId: 'c1', cursor: 'e1-3', head: 'e1-4' });
    h.last().deliver(event('e1-4', 'e1-3', appended(2, 'llo')));
    expect(conversation.messages.map((m) => m.text)).toEqual(['Hello']);
    expect(h.client.state).toBe('live');
    // The old socket's close event, arriving late, changes nothing.
    await jest.advanceTimersByTimeAsync(0);
    expect(h.sockets).toHaveLength(2);
    expect(h.held()).toEqual([h.last()]);
  });

  it('waits longer for the answer to its ping while a subscription still waits for its snapshot (one large frame over a slow link), and still gives a dead one up', async () => {
    const h = start();
    h.client.subscribe('c1');
    await settle();
    h.last().accept();
    // No frame at all: the snapshot is still on its way.
    await jest.advanceTimersByTimeAsync(25_000 + 50_000);
    expect(h.sockets).toHaveLength(1);
    expect(h.sockets[0]!.readyState).not.toBe(CLOSED);
    await jest.advanceTimersByTimeAsync(10_000);
    expect(h.sockets[0]!.readyState).toBe(CLOSED);
  });

  it('keeps a connection that answers the ping', async () => {
    const { h } = await following();
    await jest.advanceTimersByTimeAsync(25_000);
    h.last().deliver({ type: 'pong' });
    await jest.advanceTimersByTimeAsync(34_000);
    expect(h.sockets).toHaveLength(1);
    expect(h.held()).toEqual([h.sockets[0]]);
    expect(h.sockets[0]!.frames().filter((frame) => frame.type === 'ping')).toHaveLength(2);
  });

  it('never pings a connection that keeps delivering', async () => {
    const { h, conversation } = await following();
    for (let part = 2; part <= 8; part++) {
      await jest.advanceTimersByTimeAsync(10_000);
      h.last().deliver(event(`e1-${part + 2}`, `e1-${part + 1}`, appended(part, 'x')));
    }
    expect(h.sockets).toHaveLength(1);
    expect(h.last().frames()).toEqual([{ type: 'subscribe', conversationId: 'c1' }]);
    expect(conversation.messages[0]!.text).toBe('Hexxxxxxx');
  });

  it('heartbeat: false never pings', async () => {
    const { h } = await following({ heartbeat: false });
    await jest.advanceTimersByTimeAsync(120_000);
    expect(h.sockets).toHaveLength(1);
    expect(h.last().frames()).toEqual([{ type: 'subscribe', conversationId: 'c1' }]);
  });
});

describe('SeqlineClient posts over the frame limit', () => {
  it('are refused at once with FRAME_TOO_LARGE, never sent, and not sent after a reconnect', async () => {
    const h = start();
    await settle();
    h.last().accept();
    const text = 'é'.repeat(33_000); // 33,000 characters, 66,000 bytes: over 64 KiB only in bytes
    const bytes = Buffer.byteLength(JSON.stringify({ type: 'post', conversationId: 'c1', messageId: 'big', text, ref: 'r1' }));
    const big = track(h.client.post('c1', text, { messageId: 'big' }));
    const fits = track(h.client.post('c1', 'é'.repeat(32_000), { messageId: 'fits' }));
    await settle();
    expect(big.state).toBe('rejected');
    expect(big.value).toMatchObject({ name: 'SeqlineError', code: 'FRAME_TOO_LARGE', message: `post frame is ${bytes} bytes; the limit is 65536` });
    expect(fits.state).toBe('pending');
    expect(h.last().frames().map((frame) => frame.messageId)).toEqual(['fits']);

    await reconnect(h);
    expect(h.last().frames().map((frame) => frame.messageId)).toEqual([undefined, 'fits']);
  });

  it("reject with the server's FRAME_TOO_LARGE when its limit is lower than the client's: the largest request waiting, not sent again", async () => {
    const h = start();
    await settle();
    h.last().accept();
    h.last().deliver({ type: 'pong' });
    const small = track(h.client.post('c1', 'hi', { messageId: 'small' }));
    const large = track(h.client.post('c1', 'x'.repeat(20_000), { messageId: 'large' }));
    await settle();
    // The server's limit is 16 KiB: it cannot read the frame, so its refusal names no request.
    h.last().deliver({ type: 'error', code: 'FRAME_TOO_LARGE', message: 'frame is 20077 bytes; the limit is 16384' });
    await settle();
    expect(large).toMatchObject({ state: 'rejected', value: { code: 'FRAME_TOO_LARGE', message: 'frame is 20077 bytes; the limit is 16384' } });
    expect(small.state).toBe('pending');
    // Not a refusal of the connection.
    expect(h.client.refusal).toBeUndefined();
    await reconnect(h);
    expect(h.last().frames().map((frame) => frame.messageId)).toEqual([undefined, 'small']);
  });

  it('follow the limit the client is given for a server that raised its own', async () => {
    const h = start({ maxFrameBytes: 200_000 });
    await settle();
    h.last().accept();
    const large = track(h.client.post('c1', 'é'.repeat(33_000), { messageId: 'large' }));
    const huge = track(h.client.post('c1', 'é'.repeat(100_000), { messageId: 'huge' }));
    await settle();
    expect(large.state).toBe('pending');
    expect(huge.state).toBe('rejected');
    expect(huge.value).toMatchObject({ code: 'FRAME_TOO_LARGE', message: expect.stringMatching(/^post frame is \d+ bytes; the limit is 200000$/) });
    expect(h.last().frames().map((frame) => frame.messageId)).toEqual(['large']);
  });

  it('never go past the 4 MiB the WebSocket itself takes, whatever limit the client is given', async () => {
    const h = start({ maxFrameBytes: 64 * 1024 * 1024 });
    await settle();
    h.last().accept();
    const huge = track(h.client.post('c1', 'x'.repeat(5 * 1024 * 1024), { messageId: 'huge' }));
    await settle();
    expect(huge.value).toMatchObject({ code: 'FRAME_TOO_LARGE', message: expect.stringMatching(/; the limit is 4194304$/) });
    expect(h.last().frames()).toEqual([]);
  });
});

describe('SeqlineClient with a store that fails', () => {
  const failing: CursorStore = {
    load: () => Promise.reject(new Error('storage unavailable')),
    save: () => {
      throw new Error('QuotaExceededError');
    },
    remove: () => Promise.reject(new Error('storage unavailable')),
  };

  it('subscribes as if nothing were stored, and keeps streaming though nothing can be saved', async () => {
    const h = start({ store: failing, saveIntervalMs: 10 });
    const conversation = h.client.subscribe('c1');
    await settle();
    h.last().accept();
    expect(h.last().frames()).toEqual([{ type: 'subscribe', conversationId: 'c1' }]);
    h.last().deliver({ type: 'snapshot', conversationId: 'c1', cursor: 'e1-5', messages: [answer('Hel', 1)] });
    h.last().deliver(event('e1-6', 'e1-5', { type: 'message.appended', messageId: 'm1', part: 2, delta: 'lo', at }));
    await jest.advanceTimersByTimeAsync(50);
    expect(conversation.messages.map((m) => m.text)).toEqual(['Hello']);
    await h.client.close();
  });

  it('does not wait for a load that never settles: after 5 s the conversation starts as if nothing were stored', async () => {
    const hung: CursorStore = { load: () => new Promise<undefined>(() => undefined), save: () => undefined, remove: () => undefined };
    const h = start({ store: hung });
    h.client.subscribe('c1');
    await settle();
    h.last().accept();
    await jest.advanceTimersByTimeAsync(4_900);
    expect(h.last().frames()).toEqual([{ type: 'ping' }]);
    await jest.advanceTimersByTimeAsync(100);
    h.last().deliver({ type: 'pong' });
    expect(h.last().frames()).toEqual([{ type: 'ping' }, { type: 'subscribe', conversationId: 'c1' }]);
  });
});

describe('SeqlineClient closed', () => {
  it('rejects requests still waiting for an answer and ends every subscription', async () => {
    const h = start();
    const conversation = h.client.subscribe('c1');
    await settle();
    h.last().accept();
    const posting = h.client.post('c1', 'hello', { messageId: 'q1' });
    const outcome = posting.then(
      () => 'answered',
      (error: { code?: string }) => error.code,
    );
    const events = conversation.events();
    const ended = events.next();
    await h.client.close();
    expect(await outcome).toBe('UNAVAILABLE');
    expect(await ended).toEqual({ done: true, value: undefined });
    await expect(h.client.post('c1', 'again')).rejects.toMatchObject({ code: 'UNAVAILABLE', message: 'the client is closed' });
    // A conversation followed afterwards says why nothing will come, and its loops end at once.
    const late = h.client.subscribe('c2');
    expect(late.refusal).toEqual({ code: 'UNAVAILABLE', message: 'the client is closed' });
    expect(await late.events().next()).toEqual({ done: true, value: undefined });
    await settle();
    expect(h.sockets.flatMap((socket) => socket.frames()).filter((frame) => frame.conversationId === 'c2')).toEqual([]);
  });
});

describe('SeqlineClient closed with a store that never answers a save', () => {
  it('gives the save up after 5 s: close() resolves, waiting requests reject UNAVAILABLE, subscriptions end', async () => {
    const hung: CursorStore = { load: () => undefined, save: () => new Promise<void>(() => undefined), remove: () => undefined };
    const { h, conversation } = await following({ store: hung });
    const posting = track(h.client.post('c1', 'hello', { messageId: 'q1' }));
    const events = conversation.events();
    const ended = track(events.next());
    const closing = track(h.client.close());
    await jest.advanceTimersByTimeAsync(4_900);
    expect(closing.state).toBe('pending');
    await jest.advanceTimersByTimeAsync(100);
    expect(closing.state).toBe('resolved');
    expect(posting).toMatchObject({ state: 'rejected', value: { code: 'UNAVAILABLE' } });
    expect(ended).toEqual({ state: 'resolved', value: { done: true, value: undefined } });
  });
});

describe('SeqlineClient subscriptions shared and listened to by several parts of an app', () => {
  it('a subscription closed by its own reset listener (its stored state loaded) is never subscribed on the server', async () => {
    const store = new MemoryCursorStore();
    await store.save('c2', { cursor: 'e1-7', messages: [] });
    const { h } = await following({ store });
    const second = h.client.subscribe('c2');
    second.on((change) => {
      if (change.type === 'reset') second.close();
    });
    await settle();
    expect(h.last().frames().filter((frame) => frame.conversationId === 'c2')).toEqual([]);
  });


  it('subscribing twice gives one subscription that ends only when both callers closed it', async () => {
    const { h, conversation: first } = await following();
    const second = h.client.subscribe('c1');
    expect(second).toBe(first);
    first.close();
    h.last().deliver(event('e1-4', 'e1-3', appended(2, 'llo')));
    expect(second.messages.map((m) => m.text)).toEqual(['Hello']);
    expect(h.last().frames()).toEqual([{ type: 'subscribe', conversationId: 'c1' }]);
    second.close();
    expect(h.last().frames().at(-1)).toEqual({ type: 'unsubscribe', conversationId: 'c1' });
  });

  it('events() keeps what is applied between the call and the first next()', async () => {
    const { h, conversation: first } = await following();
    const events = first.events();
    h.last().deliver(event('e1-4', 'e1-3', appended(2, 'l')));
    h.last().deliver(event('e1-5', 'e1-4', appended(3, 'lo')));
    expect((await events.next()).value).toMatchObject({ cursor: 'e1-4', event: { delta: 'l' } });
    expect((await events.next()).value).toMatchObject({ cursor: 'e1-5', event: { delta: 'lo' } });
    first.close();
    expect(await events.next()).toEqual({ done: true, value: undefined });
    // One asked for after the end ends at once.
    expect(await first.events().next()).toEqual({ done: true, value: undefined });
  });

  it('a listener that throws is reported and neither stops the others nor the subscribe of a stored conversation', async () => {
    const errors = jest.spyOn(console, 'error').mockImplementation(() => undefined);
    const store = new MemoryCursorStore();
    store.save('c1', { cursor: 'e1-3', messages: [answer('He', 1)] });
    const h = start({ store });
    const conversation = h.client.subscribe('c1');
    const seen: string[] = [];
    conversation.on(() => {
      throw new Error('render failed');
    });
    conversation.on((change) => seen.push(change.type));
    await settle();
    h.last().accept();
    expect(h.last().frames()).toEqual([{ type: 'subscribe', conversationId: 'c1', after: 'e1-3' }]);
    expect(seen).toEqual(['reset']);
    expect(errors).toHaveBeenCalledWith('seqline: a subscription listener threw', expect.objectContaining({ message: 'render failed' }));
  });

  it('a conversation refused for good does not hold the client at catching-up, and is not live itself', async () => {
    const h = start();
    h.client.subscribe('c1');
    const refused = h.client.subscribe('c2');
    const seen: (string | undefined)[] = [];
    refused.on((change) => seen.push(change.type === 'error' ? refused.refusal?.code : undefined));
    await settle();
    h.last().accept();
    h.last().deliver({ type: 'snapshot', conversationId: 'c1', cursor: 'e1-3', messages: [] });
    expect(h.client.state).toBe('catching-up');
    h.last().deliver({ type: 'error', conversationId: 'c2', code: 'FORBIDDEN', message: 'not yours' });
    expect(h.client.state).toBe('live');
    expect({ live: refused.live, refusal: refused.refusal }).toEqual({ live: false, refusal: { code: 'FORBIDDEN', message: 'not yours' } });
    // Listeners of the error see why already.
    expect(seen).toEqual(['FORBIDDEN']);
  });
});

describe('SeqlineClient subscriptions the server ends', () => {
  it.each([
    ['UNAVAILABLE', 'a catch-up read failed'],
    ['CURSOR_EXPIRED', 'the log was recreated'],
  ])('are not live after %s (%s) until the server answers the subscribe again', async (code, message) => {
    const { h, conversation } = await following();
    expect({ client: h.client.state, live: conversation.live }).toEqual({ client: 'live', live: true });
    h.last().deliver({ type: 'error', conversationId: 'c1', code, message });
    expect({ client: h.client.state, live: conversation.live }).toEqual({ client: 'catching-up', live: false });
    await jest.advanceTimersByTimeAsync(1_000);
    h.last().deliver({ type: 'snapshot', conversationId: 'c1', cursor: 'e2-1', messages: [] });
    expect({ client: h.client.state, live: conversation.live }).toEqual({ client: 'live', live: true });
  });
});

describe('SeqlineClient stopped for good by the server', () => {
  it('fails requests still waiting when a token is refused and there is no provider to ask for another', async () => {
    const h = start();
    await settle();
    h.last().accept();
    const posting = track(h.client.post('c1', 'hello', { messageId: 'q1' }));
    h.last().deliver({ type: 'error', code: 'UNAUTHORIZED', message: 'token refused' });
    h.last().end(4401);
    await jest.advanceTimersByTimeAsync(60_000);
    expect(h.sockets).toHaveLength(1);
    expect(posting).toMatchObject({ state: 'rejected', value: { code: 'UNAUTHORIZED' } });
  });
});

describe('SeqlineClient following many conversations', () => {
  it('sends 32 subscribes on a new socket, and the rest once the server first answers, so it is not closed for frames sent before its token check', async () => {
    const h = start();
    const ids = Array.from({ length: 100 }, (_, i) => `c${i}`);
    const subscriptions = ids.map((id) => h.client.subscribe(id));
    await settle();
    h.last().accept();
    const subscribed = () => h.last().frames().filter((frame) => frame.type === 'subscribe').map((frame) => frame.conversationId);
    expect(subscribed()).toEqual(ids.slice(0, 32));
    expect(h.last().frames().filter((frame) => frame.type === 'ping')).toHaveLength(1);
    subscriptions[40]!.close();
    h.last().deliver({ type: 'subscribed', conversationId: 'c0', head: 'e1-0' });
    expect(subscribed()).toEqual(ids.filter((id) => id !== 'c40'));
    // Never subscribed on this socket, so nothing to unsubscribe.
    expect(h.last().frames().filter((frame) => frame.type === 'unsubscribe')).toEqual([]);
  });
});

describe('SeqlineClient told why the server refused it', () => {
  it('keeps the connection refusal for the app until a session works, and with a provider keeps trying', async () => {
    const h = start({ token: () => 'revoked' });
    await settle();
    h.last().accept();
    h.last().deliver({ type: 'error', code: 'UNAUTHORIZED', message: 'token refused' });
    h.last().end(4401);
    expect(h.client.refusal).toEqual({ code: 'UNAUTHORIZED', message: 'token refused' });
    await jest.advanceTimersByTimeAsync(250);
    expect(h.sockets).toHaveLength(2);
    h.last().accept();
    h.last().deliver({ type: 'pong' });
    expect(h.client.refusal).toBeUndefined();
  });

  it('without a provider, stops: every subscription carries the refusal, and requests made afterwards fail at once until connect()', async () => {
    const h = start();
    const conversation = h.client.subscribe('c1');
    const errors: string[] = [];
    conversation.on((change) => change.type === 'error' && errors.push(change.code));
    await settle();
    h.last().accept();
    h.last().deliver({ type: 'error', code: 'UNAUTHORIZED', message: 'token refused' });
    h.last().end(4401);
    expect(errors).toEqual(['UNAUTHORIZED']);
    expect(conversation.refusal?.code).toBe('UNAUTHORIZED');
    const late = track(h.client.post('c1', 'hello', { messageId: 'q2' }));
    await settle();
    expect(late).toMatchObject({ state: 'rejected', value: { code: 'UNAUTHORIZED' } });
    h.client.connect();
    await settle();
    expect(h.sockets).toHaveLength(2);
    h.last().accept();
    const posting = track(h.client.post('c1', 'hello', { messageId: 'q3' }));
    await settle();
    expect(posting.state).toBe('pending');
    expect(h.last().frames().map((frame) => frame.type)).toEqual(['subscribe', 'post']);
  });
});

describe('SeqlineClient refreshing its token across a reconnect', () => {
  it('does not send the older token again on the new connection, which carries a fresher one; the refresh resolves', async () => {
    let issued = 0;
    const h = start({ token: () => `t${++issued}` });
    await settle();
    h.last().accept();
    const refresh = track(h.client.refreshToken());
    await settle();
    expect(h.last().frames()).toEqual([{ type: 'auth', token: 't2', ref: 'r1' }]);
    h.last().end(1006);
    await jest.advanceTimersByTimeAsync(250);
    expect(h.last().url).toContain('access_token=t3');
    h.last().accept();
    await settle();
    expect(refresh.state).toBe('resolved');
    h.last().deliver({ type: 'pong' });
    expect(h.last().frames().filter((frame) => frame.type === 'auth')).toEqual([]);
  });
});

describe('SeqlineClient refreshing its token slowly across a reconnect', () => {
  it('does not send the token it waited for once the new connection carries a token asked for after it', async () => {
    let issued = 0;
    const slow = deferred<string>();
    const h = start({ token: () => (++issued === 2 ? slow.promise : `t${issued}`) });
    await settle();
    h.last().accept();
    // The refresh waits for its token (t2); meanwhile the connection drops and the reconnect gets t3.
    const refresh = track(h.client.refreshToken());
    h.last().end(1006);
    await jest.advanceTimersByTimeAsync(250);
    expect(h.last().url).toContain('access_token=t3');
    h.last().accept();
    h.last().deliver({ type: 'pong' });
    slow.resolve('t2');
    await settle();
    expect(h.last().frames().filter((frame) => frame.type === 'auth')).toEqual([]);
    expect(refresh.state).toBe('resolved');
  });
});

describe('SeqlineClient refreshing its token while the new socket opens', () => {
  it('does not send the token that came back while a socket with a token asked for after it was opening', async () => {
    let issued = 0;
    const slow = deferred<string>();
    const h = start({ token: () => (++issued === 2 ? slow.promise : `t${issued}`) });
    await settle();
    h.last().accept();
    const refresh = track(h.client.refreshToken());
    h.last().end(1006);
    await jest.advanceTimersByTimeAsync(250);
    // The reconnect has its token (t3) and its socket is opening when the refresh's (t2) comes back.
    expect(h.last().url).toContain('access_token=t3');
    slow.resolve('t2');
    await settle();
    h.last().accept();
    h.last().deliver({ type: 'pong' });
    await settle();
    expect(h.last().frames().filter((frame) => frame.type === 'auth')).toEqual([]);
    expect(refresh.state).toBe('resolved');
  });
});

describe('SeqlineClient refreshing its token while it reconnects', () => {
  it('sends a refresh asked for after the reconnect fetched its token, which may carry a newer one', async () => {
    let issued = 0;
    const token = deferred<string>();
    const h = start({ token: () => (++issued === 2 ? token.promise : `t${issued}`) });
    await settle();
    h.last().accept();
    h.last().end(1006);
    await jest.advanceTimersByTimeAsync(250);
    // The reconnect waits for its token (t2); meanwhile the app refreshes (t3).
    const refresh = track(h.client.refreshToken());
    token.resolve('t2');
    await settle();
    h.last().accept();
    h.last().deliver({ type: 'pong' });
    expect(h.last().frames().filter((frame) => frame.type === 'auth').map((frame) => frame.token)).toEqual(['t3']);
    expect(refresh.state).toBe('pending');
  });
});

describe('SeqlineClient state bookkeeping', () => {
  it('a state listener that throws does not stop the reconnect', async () => {
    const h = start();
    const spy = jest.spyOn(console, 'error').mockImplementation(() => undefined);
    h.client.onStateChange((state) => {
      if (state === 'offline') throw new Error('listener bug');
    });
    await settle();
    h.last().accept();
    h.last().end(1006);
    await jest.advanceTimersByTimeAsync(250);
    expect(h.sockets).toHaveLength(2);
    expect(spy).toHaveBeenCalledWith('seqline: a state listener threw', expect.any(Error));
  });

  it('closing the one conversation still catching up leaves the client live; subscribing to another while live is catching up', async () => {
    const { h } = await following();
    expect(h.client.state).toBe('live');
    const other = h.client.subscribe('c2');
    expect(h.client.state).toBe('catching-up');
    await settle();
    other.close();
    expect(h.client.state).toBe('live');
    const third = h.client.subscribe('c3');
    await settle();
    h.last().deliver({ type: 'snapshot', conversationId: 'c3', cursor: 'e1-9', messages: [] });
    expect(h.client.state).toBe('live');
    third.close();
  });

  it('an unsubscribe answered NOT_SUBSCRIBED (the conversation was refused) does not mark the new subscription to it refused', async () => {
    const h = start();
    const first = h.client.subscribe('c1');
    await settle();
    h.last().accept();
    h.last().deliver({ type: 'error', conversationId: 'c1', code: 'FORBIDDEN', message: 'not yours' });
    first.close();
    const again = h.client.subscribe('c1');
    await settle();
    h.last().deliver({ type: 'error', conversationId: 'c1', code: 'NOT_SUBSCRIBED', message: 'not subscribed to c1' });
    expect(again.refusal).toBeUndefined();
    h.last().deliver({ type: 'snapshot', conversationId: 'c1', cursor: 'e1-3', messages: [] });
    expect({ refusal: again.refusal, live: again.live, state: h.client.state }).toEqual({ refusal: undefined, live: true, state: 'live' });
  });

  it('drops an upgrade that does not complete and tries again', async () => {
    const h = start();
    await settle();
    expect(h.sockets).toHaveLength(1);
    await jest.advanceTimersByTimeAsync(15_000);
    expect(h.client.state).not.toBe('live');
    await jest.advanceTimersByTimeAsync(250);
    expect(h.sockets).toHaveLength(2);
    expect(h.sockets[0]!.readyState).toBe(CLOSED);
  });
});

describe('SeqlineClient with many requests queued while offline', () => {
  it('sends them once the server first answers, so the frames held during its token check stay under its limit', async () => {
    const h = start();
    h.client.subscribe('c1');
    await settle();
    const posts = Array.from({ length: 70 }, (_, i) => track(h.client.post('c1', `message ${i}`, { messageId: `q${i}` })));
    h.last().accept();
    expect(h.last().frames()).toEqual([{ type: 'subscribe', conversationId: 'c1' }, { type: 'ping' }]);
    // Posted meanwhile: held with the others.
    const late = track(h.client.post('c1', 'late', { messageId: 'late' }));
    expect(h.last().frames()).toHaveLength(2);
    h.last().deliver({ type: 'snapshot', conversationId: 'c1', cursor: 'e1-0', messages: [] });
    const sent = h.last().frames().slice(2);
    expect(sent.map((frame) => frame.messageId)).toEqual([...posts.map((_, i) => `q${i}`), 'late']);
    for (const frame of sent) h.last().deliver({ type: 'ack', ref: frame.ref, conversationId: 'c1', messageId: frame.messageId, cursor: 'e1-1' });
    await settle();
    expect([...posts, late].every((post) => post.state === 'resolved')).toBe(true);
    // With nothing queued, a request goes out at once.
    h.client.post('c1', 'now', { messageId: 'now' }).catch(() => undefined);
    expect(h.last().frames().at(-1)).toMatchObject({ type: 'post', messageId: 'now' });
  });
});

describe('SeqlineClient keeping to what it was told', () => {
  it('opens no socket on connect() after close(), nor on one made while close() saves', async () => {
    const store = new MemoryCursorStore();
    const saving = deferred<void>();
    const h = start({ store: { ...store, load: (id) => store.load(id), remove: (id) => store.remove(id), save: async () => saving.promise } });
    h.client.subscribe('c1');
    await settle();
    h.last().accept();
    h.last().deliver({ type: 'snapshot', conversationId: 'c1', cursor: 'e1-3', messages: [] });
    const closing = h.client.close();
    // An `online` handler still registered fires while the state is written.
    h.client.connect();
    saving.resolve();
    await closing;
    h.client.connect();
    await jest.advanceTimersByTimeAsync(60_000);
    expect(h.sockets).toHaveLength(1);
    expect(h.client.state).toBe('offline');
  });

  it('never sends an invalid id: the subscription ends refused VALIDATION_FAILED and a post rejects with it', async () => {
    const h = start();
    await settle();
    h.last().accept();
    h.last().deliver({ type: 'pong' });
    const invalid = h.client.subscribe('support:42');
    expect(invalid.refusal).toEqual({ code: 'VALIDATION_FAILED', message: 'conversationId "support:42" is invalid: ids are 1-128 characters of A-Z a-z 0-9 _ - (not __proto__)' });
    const posting = track(h.client.post('c1', 'hello', { messageId: 'a.b' }));
    const cancelling = track(h.client.cancel('a'.repeat(129), 'm1'));
    await settle();
    expect(posting).toMatchObject({ state: 'rejected', value: { code: 'VALIDATION_FAILED', message: 'messageId "a.b" is invalid: ids are 1-128 characters of A-Z a-z 0-9 _ - (not __proto__)' } });
    expect(cancelling).toMatchObject({ state: 'rejected', value: { code: 'VALIDATION_FAILED' } });
    expect(h.last().frames()).toEqual([]);
    expect(h.client.state).toBe('live');
    // The same id is free for a valid subscription: the refused one holds nothing.
    expect(h.client.subscribe('c1')).not.toBe(invalid);
  });

  it('gives a subscription made after it stopped for good the refusal too, and a retry timer firing afterwards does not erase one', async () => {
    const h = start();
    const first = h.client.subscribe('c1');
    await settle();
    h.last().accept();
    // A retryable refusal leaves a retry timer running.
    h.last().deliver({ type: 'error', conversationId: 'c1', code: 'UNAVAILABLE', message: 'try again' });
    h.last().deliver({ type: 'error', code: 'UNAUTHORIZED', message: 'token refused' });
    h.last().end(4401);
    const errors: string[] = [];
    const later = h.client.subscribe('c2');
    later.on((change) => change.type === 'error' && errors.push(change.code));
    await jest.advanceTimersByTimeAsync(60_000);
    expect(errors).toEqual(['UNAUTHORIZED']);
    expect(later.refusal?.code).toBe('UNAUTHORIZED');
    expect(first.refusal?.code).toBe('UNAUTHORIZED');
    expect(h.sockets).toHaveLength(1);
    // connect() tries again for both.
    h.client.connect();
    await settle();
    h.last().accept();
    expect(h.last().frames().filter((frame) => frame.type === 'subscribe').map((frame) => frame.conversationId)).toEqual(['c1', 'c2']);
  });

  it('is not live while it drops events to repair a gap, and live again once the replay is in', async () => {
    const { h, conversation } = await following();
    expect({ client: h.client.state, live: conversation.live }).toEqual({ client: 'live', live: true });
    // e1-4 was lost on the way: e1-5 names it as the event before.
    h.last().deliver(event('e1-5', 'e1-4', appended(3, 'o')));
    expect({ client: h.client.state, live: conversation.live }).toEqual({ client: 'catching-up', live: false });
    h.last().deliver({ type: 'subscribed', conversationId: 'c1', cursor: 'e1-3', head: 'e1-5' });
    h.last().deliver(event('e1-4', 'e1-3', appended(2, 'll')));
    h.last().deliver(event('e1-5', 'e1-4', appended(3, 'o')));
    expect({ client: h.client.state, live: conversation.live, text: conversation.messages[0]?.text }).toEqual({ client: 'live', live: true, text: 'Hello' });
  });

  it('waits for a slow token provider again rather than calling it twice, and gives up one that never answers for a fresh call', async () => {
    let calls = 0;
    let signedIn!: (token: string) => void;
    const slow = start({ token: () => (++calls === 1 ? new Promise<string>((resolve) => (signedIn = resolve)) : 't2') });
    // A sign-in taking 20 s: past one connect timeout, the same call is waited for again.
    await jest.advanceTimersByTimeAsync(20_000);
    expect({ calls, sockets: slow.sockets.length }).toEqual({ calls: 1, sockets: 0 });
    signedIn('t1');
    await settle();
    expect(slow.sockets).toHaveLength(1);
    expect(slow.last().url).toContain('access_token=t1');

    await slow.client.close();
    let hungCalls = 0;
    const hung = start({ token: () => (++hungCalls === 1 ? new Promise<string>(() => undefined) : 't2') });
    await jest.advanceTimersByTimeAsync(59_000);
    expect({ calls: hungCalls, sockets: hung.sockets.length }).toEqual({ calls: 1, sockets: 0 });
    await jest.advanceTimersByTimeAsync(20_000);
    expect(hungCalls).toBe(2);
    expect(hung.sockets).toHaveLength(1);
    expect(hung.last().url).toContain('access_token=t2');
  });

  it('fails requests at once when the platform refuses to create the WebSocket', async () => {
    jest.spyOn(console, 'error').mockImplementation(() => undefined);
    class RefusedSocket {
      constructor() {
        throw new Error('insecure WebSocket from an https page');
      }
    }
    const client = new SeqlineClient({ url: 'http://seqline.test', WebSocket: RefusedSocket as never });
    await settle();
    const posting = track(client.post('c1', 'hello', { messageId: 'q1' }));
    await settle();
    expect(posting).toMatchObject({ state: 'rejected', value: { code: 'UNAVAILABLE', message: 'the WebSocket could not be created (insecure WebSocket from an https page): the client stopped' } });
    expect(client.state).toBe('offline');
  });
});
