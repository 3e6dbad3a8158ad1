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
