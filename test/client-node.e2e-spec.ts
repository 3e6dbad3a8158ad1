import { KeyValueCursorStore, SeqlineClient, type ConnectionState } from '@seqline/client';
import { createConversation, eventually, useSeqline } from '@seqline/testing';
import WebSocket from 'ws';

/** The device SDK in Node, with `ws`, as docs/client.md shows it. */
describe('device SDK in Node', () => {
  const seqline = useSeqline();

  it('resumes after an app restart from the stored cursor, not from the start', async () => {
    await createConversation(seqline.server.url, 'n-restart');
    const agent = await seqline.agent('node-writer');
    const saved = new Map<string, string>();
    const storage = { getItem: (k: string) => saved.get(k) ?? null, setItem: (k: string, v: string) => void saved.set(k, v), removeItem: (k: string) => void saved.delete(k) };
    const first = new SeqlineClient({ url: seqline.server.url, WebSocket, store: new KeyValueCursorStore(storage), saveIntervalMs: 10 });
    const states: ConnectionState[] = [first.state];
    first.onStateChange((state) => states.push(state));
    const before = first.subscribe('n-restart');
    await eventually(() => first.state === 'live');

    const answer = agent.startMessage('n-restart', { messageId: 'ans' });
    let expected = '';
    for (let i = 0; i < 200; i++) {
      expected += ` w${i}`;
      answer.append(` w${i}`);
      if (i % 10 === 9) await new Promise((resolve) => setTimeout(resolve, 5));
      if (i === 100) {
        await eventually(() => (before.messages[0]?.text.length ?? 0) > 0);
        await first.close(); // the app is killed; its store keeps the cursor and text so far
      }
    }
    const storedCursor = JSON.parse(saved.get('seqline:n-restart')!).cursor as string;
    await answer.complete();

    const second = new SeqlineClient({ url: seqline.server.url, WebSocket, store: new KeyValueCursorStore(storage) });
    const after = second.subscribe('n-restart');
    const replayed: string[] = [];
    after.on((change) => change.type === 'event' && replayed.push(change.event.prev));
    await eventually(() => after.messages[0]?.status === 'complete');
    expect(after.messages[0]!.text).toBe(expected);
    expect(replayed[0]).toBe(storedCursor);
    expect(states).toEqual(['connecting', 'catching-up', 'live', 'offline']);
    await second.close();
  });

  it('posts idempotently, cancels an answer, and iterates events', async () => {
    await createConversation(seqline.server.url, 'n-post');
    const agent = await seqline.agent('node-answerer');
    const client = new SeqlineClient({ url: seqline.server.url, WebSocket });
    const conversation = client.subscribe('n-post');
    // Subscribed first, so the prompt arrives as an event rather than inside the starting snapshot.
    await eventually(() => client.state === 'live');
    const seen: string[] = [];
    const iterating = (async () => {
      for await (const event of conversation.events()) {
        seen.push(`${event.event.type}:${event.event.messageId}`);
        if (event.event.type === 'message.aborted') break;
      }
    })();
    const posted = await client.post('n-post', 'hello', { messageId: 'q1' });
    const again = await client.post('n-post', 'hello', { messageId: 'q1' });
    // Other text under the same id is no retry: refused, nothing written.
    await expect(client.post('n-post', 'hello, edited', { messageId: 'q1' })).rejects.toMatchObject({
      code: 'MESSAGE_EXISTS',
      message: 'message q1 already exists with other text; post an edited message under a new id',
    });
    expect(again.cursor).toBe(posted.cursor);
    const answer = agent.startMessage('n-post', { messageId: 'q1-answer' });
    answer.append('partial');
    await eventually(() => conversation.messages.find((m) => m.id === 'q1-answer')?.text === 'partial');
    await client.cancel('n-post', 'q1-answer');
    await iterating;
    await eventually(() => answer.signal.aborted);
    expect(seen).toEqual(['message.created:q1', 'message.created:q1-answer', 'message.appended:q1-answer', 'message.aborted:q1-answer']);
    expect(conversation.messages.map((m) => [m.id, m.status])).toEqual([['q1', 'complete'], ['q1-answer', 'aborted']]);
    await expect(client.cancel('n-post', 'q1-answer')).resolves.toBeUndefined(); // cancelling twice is idempotent
    await expect(client.cancel('n-post', 'q1')).rejects.toMatchObject({ code: 'MESSAGE_FINISHED', messageStatus: 'complete' });
    await expect(client.post('nowhere', 'x')).rejects.toMatchObject({ code: 'UNKNOWN_CONVERSATION' });
    await client.close();
  });
});
