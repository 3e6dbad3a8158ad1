import type { Message } from '@seqline/protocol';
import type { SeqlineClient } from '@seqline/client';
import { answerTo, SeqlineChatTransport } from './seqline-chat-transport.js';

const at = '2026-01-01T00:00:00.000Z';
const message = (id: string, role: 'user' | 'agent', seq: number): Message => ({ id, author: { role, id: role === 'user' ? 'u' : 'bot' }, status: 'streaming', text: '', parts: 0, createdAt: at, updatedAt: at, cursor: `e1-${seq}` });

describe('answerTo (which answer a prompt gets in useChat)', () => {
  it('picks the answer named after the prompt, even when another prompt\'s answer started first', () => {
    // Device A posted p1 (seq 10), device B p2 (seq 11); p2's answer started first.
    const messages = [message('p1', 'user', 10), message('p2', 'user', 11), message('p2-answer', 'agent', 12), message('p1-answer', 'agent', 13)];
    expect(answerTo(messages, 'p1', 10)).toBe('p1-answer');
    expect(answerTo(messages, 'p2', 11)).toBe('p2-answer');
  });

  it('waits rather than take another prompt\'s named answer', () => {
    const messages = [message('p1', 'user', 10), message('p2', 'user', 11), message('p2-answer', 'agent', 12)];
    expect(answerTo(messages, 'p1', 10)).toBeUndefined();
  });

  it('takes the first agent message after the prompt when answers are not named after prompts', () => {
    const messages = [message('p0', 'user', 5), message('x-older', 'agent', 6), message('p1', 'user', 10), message('a-7f3', 'agent', 12)];
    expect(answerTo(messages, 'p1', 10)).toBe('a-7f3');
  });
});

describe('SeqlineChatTransport refuses what a conversation does not do', () => {
  const send = (transport: SeqlineChatTransport, trigger: 'submit-message' | 'regenerate-message', messageId: string | undefined) =>
    transport.sendMessages({ chatId: 'c1', trigger, messageId, messages: [{ id: 'q1', role: 'user', parts: [{ type: 'text', text: 'edited' }] }], abortSignal: undefined });

  it('refuses to regenerate before posting anything', async () => {
    const client = { subscribe: () => { throw new Error('nothing may be subscribed'); } } as unknown as SeqlineClient;
    await expect(send(new SeqlineChatTransport({ client }), 'regenerate-message', undefined)).rejects.toMatchObject({ name: 'SeqlineTransportError', code: 'REGENERATE_UNSUPPORTED' });
  });

  it('turns the refusal of an edited question (other text under a posted id) into EDIT_UNSUPPORTED', async () => {
    const posted: string[] = [];
    const client = {
      subscribe: () => ({ close: () => undefined }),
      post: (_id: string, text: string) => {
        posted.push(text);
        return Promise.reject(Object.assign(new Error('message q1 already exists with other text; post an edited message under a new id'), { code: 'MESSAGE_EXISTS' }));
      },
    } as unknown as SeqlineClient;
    await expect(send(new SeqlineChatTransport({ client }), 'submit-message', 'q1')).rejects.toMatchObject({ name: 'SeqlineTransportError', code: 'EDIT_UNSUPPORTED' });
    expect(posted).toEqual(['edited']);
  });
});

/** As much of a device SDK client as the transport uses: one conversation whose messages a test sets. */
class FakeClient {
  messages: Message[] = [];
  readonly cancels: string[] = [];
  cancelRefusal?: { code: string; message: string };
  private readonly listeners = new Set<(change?: { type: string }) => void>();
  private posted?: (result: { messageId: string; cursor: string }) => void;

  subscribe(conversationId: string) {
    const messages = () => this.messages;
    const listeners = this.listeners;
    return {
      conversationId,
      live: true,
      refusal: undefined,
      get messages() {
        return messages();
      },
      view: { messages: new Map<string, unknown>() },
      on(listener: (change?: { type: string }) => void) {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
      close: () => undefined,
    };
  }
  /** A post the test answers when it chooses (`land`): the device is offline until then. */
  post(): Promise<{ messageId: string; cursor: string }> {
    return new Promise((resolve) => (this.posted = resolve));
  }
  land(result: { messageId: string; cursor: string }): void {
    this.posted!(result);
  }
  async cancel(conversationId: string, messageId: string): Promise<void> {
    this.cancels.push(`${conversationId}/${messageId}`);
    if (this.cancelRefusal) throw Object.assign(new Error(this.cancelRefusal.message), this.cancelRefusal);
  }
  /** The client was closed: every subscription ends, as the device SDK's do. */
  closed(): void {
    for (const listener of [...this.listeners]) listener({ type: 'ended' });
  }
  /** The conversation changed. */
  changed(messages: Message[]): void {
    this.messages = messages;
    for (const listener of [...this.listeners]) listener();
  }
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

/** A conversation whose answer q1-answer is streaming, its cancels refused with `refusal`, and a transport that reports refused cancels. */
function refusingCancels(refusal: { code: string; message: string }) {
  const client = new FakeClient();
  client.messages = [message('q1', 'user', 10), message('q1-answer', 'agent', 11)];
  client.cancelRefusal = refusal;
  const refusals: unknown[] = [];
  const transport = new SeqlineChatTransport({ client: client as unknown as SeqlineClient, onCancelError: (error) => refusals.push(error) });
  return { client, refusals, transport };
}

/** Resumes the answer streaming (as after a reload), then stops it, as useChat's stop() does. */
async function resumeThenStop(transport: SeqlineChatTransport): Promise<void> {
  const stop = new AbortController();
  expect(await transport.reconnectToStream({ chatId: 'c1', abortSignal: stop.signal })).not.toBeNull();
  stop.abort();
  await tick();
  await tick();
}
const question = { id: 'q1', role: 'user' as const, parts: [{ type: 'text' as const, text: 'Hi' }] };

describe('SeqlineChatTransport stop()', () => {
  it('stops at once while the question is still being posted, and cancels its answer once the post lands', async () => {
    const client = new FakeClient();
    const transport = new SeqlineChatTransport({ client: client as unknown as SeqlineClient });
    const stop = new AbortController();
    const sending = transport.sendMessages({ chatId: 'c1', trigger: 'submit-message', messageId: undefined, messages: [question], abortSignal: stop.signal });
    stop.abort();
    await expect(sending).rejects.toMatchObject({ name: 'AbortError' });
    // Back online: the post was on its way, and lands; its answer starts.
    client.land({ messageId: 'q1', cursor: 'e1-10' });
    await tick();
    expect(client.cancels).toEqual([]);
    client.changed([message('q1', 'user', 10), message('q1-answer', 'agent', 11)]);
    await tick();
    expect(client.cancels).toEqual(['c1/q1-answer']);
    transport.close();
  });

  it('tells the app when its cancel is refused, and followers hear the answer goes on', async () => {
    const { client, refusals, transport } = refusingCancels({ code: 'FORBIDDEN', message: 'this token does not grant cancel on conversation c1' });
    const updates: { answering: boolean; ownStream: boolean }[] = [];
    const unfollow = transport.follow('c1', ({ answering, ownStream }) => updates.push({ answering, ownStream }));
    await tick();
    const before = updates.length;
    await resumeThenStop(transport);
    expect(client.cancels).toEqual(['c1/q1-answer']);
    expect(refusals).toEqual([{ conversationId: 'c1', messageId: 'q1-answer', code: 'FORBIDDEN', message: 'this token does not grant cancel on conversation c1' }]);
    // Told by the refusal itself, at once.
    expect(updates.slice(before)).toEqual([{ answering: true, ownStream: false }]);
    unfollow();
    transport.close();
  });

  it('takes a cancel refused because the answer just ended as done, not as a refusal', async () => {
    const { client, refusals, transport } = refusingCancels({ code: 'MESSAGE_FINISHED', message: 'message q1-answer is already complete' });
    await resumeThenStop(transport);
    expect(client.cancels).toEqual(['c1/q1-answer']);
    expect(refusals).toEqual([]);
    transport.close();
  });

  it("tells followers what changed while the chat streamed its own answer, once that stream ended, without the stopped answer as answering", async () => {
    const client = new FakeClient();
    client.messages = [message('q1', 'user', 10), message('q1-answer', 'agent', 11)];
    const transport = new SeqlineChatTransport({ client: client as unknown as SeqlineClient });
    const updates: { answering: boolean; ownStream: boolean; ids: string[] }[] = [];
    const unfollow = transport.follow('c1', ({ answering, ownStream, messages }) => updates.push({ answering, ownStream, ids: messages.map((m) => m.id) }));
    await tick();
    const stop = new AbortController();
    expect(await transport.reconnectToStream({ chatId: 'c1', abortSignal: stop.signal })).not.toBeNull();
    // Another device posts while this chat streams: its followers, leaving the chat's messages to useChat, hear of it later.
    client.changed([...client.messages, message('q2', 'user', 12)]);
    const before = updates.length;
    stop.abort();
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(updates.slice(before).at(-1)).toEqual({ answering: false, ownStream: false, ids: ['q1', 'q1-answer', 'q2'] });
    unfollow();
    transport.close();
  });

  it('resumes the earliest answer still streaming after a reload, even when another device posted a question after it', async () => {
    const client = new FakeClient();
    client.messages = [message('p1', 'user', 10), message('p1-answer', 'agent', 11), message('p2', 'user', 12)];
    const transport = new SeqlineChatTransport({ client: client as unknown as SeqlineClient });
    // Stopping the resumed stream stops the answer it follows.
    await resumeThenStop(transport);
    expect(client.cancels).toEqual(['c1/p1-answer']);
    transport.close();
  });
});

describe('SeqlineChatTransport when the client closes', () => {
  it('ends a streaming answer\'s stream with CLIENT_CLOSED, instead of leaving the chat streaming for ever', async () => {
    const client = new FakeClient();
    client.messages = [message('q1', 'user', 10), message('q1-answer', 'agent', 11)];
    const transport = new SeqlineChatTransport({ client: client as unknown as SeqlineClient });
    const stream = await transport.reconnectToStream({ chatId: 'c1' });
    const reader = stream!.getReader();
    client.closed();
    await expect(
      (async () => {
        for (;;) if ((await reader.read()).done) return 'done';
      })(),
    ).rejects.toMatchObject({ name: 'SeqlineTransportError', code: 'CLIENT_CLOSED' });
    transport.close();
  }, 5_000);
});
