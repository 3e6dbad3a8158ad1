import { jest } from '@jest/globals';
import type { ConversationState, MessageState } from '@seqline/persistence';
import type { ConversationFeed } from './conversation-feed.js';
import { KeptChars, SnapshotKeeper } from './snapshot-keeper.js';

/** A keeper over a feed that takes subscribers and sends nothing, counting the states it builds. */
function keeper(message: Partial<MessageState>, maxChars: number, budget?: KeptChars) {
  let builds = 0;
  const feed = { subscribe: () => ({ close: () => undefined }) } as unknown as ConversationFeed;
  const build = async (): Promise<ConversationState> => {
    builds++;
    const state = { id: 'a1', author: { role: 'agent', id: 'bot' }, status: 'complete', text: '', cursor: 'e1-1', createdSeq: 1, appliedSeq: 1, parts: 1, ...message } as MessageState;
    return { conversationId: 'c', seq: 1, messages: new Map([['a1', state]]) };
  };
  return { keeper: new SnapshotKeeper(feed, build, 'e1', maxChars, budget), builds: () => builds };
}

describe('SnapshotKeeper', () => {
  it('keeps a state within its size for the next snapshot', async () => {
    const { keeper: kept, builds } = keeper({ text: 'hello' }, 1_000);
    await kept.snapshot();
    await kept.snapshot();
    expect(builds()).toBe(1);
  });

  it("keeps states only while all of an instance's kept states fit together, and frees a dropped state's share", async () => {
    const budget = new KeptChars(1_500);
    const first = keeper({ text: 'x'.repeat(1_000) }, 1_000_000, budget);
    const second = keeper({ text: 'y'.repeat(1_000) }, 1_000_000, budget);
    await first.keeper.snapshot();
    await first.keeper.snapshot();
    await second.keeper.snapshot();
    await second.keeper.snapshot();
    // The first is kept; the second, past the instance's total, is read for each snapshot.
    expect({ first: first.builds(), second: second.builds(), kept: budget.total }).toEqual({ first: 1, second: 2, kept: 1_000 });
    first.keeper.drop();
    await second.keeper.snapshot();
    await second.keeper.snapshot();
    expect({ second: second.builds(), kept: budget.total }).toEqual({ second: 3, kept: 1_000 });
  });

  it('counts blocks toward the size it keeps: a conversation of tool output is read again, not kept', async () => {
    const { keeper: kept, builds } = keeper({ blocks: [{ type: 'tool', id: 't1', toolName: 'search', input: '{}', output: 'x'.repeat(2_000) }] }, 1_000);
    const first = await kept.snapshot();
    await kept.snapshot();
    expect(builds()).toBe(2);
    expect(first.messages[0]!.blocks?.[0]).toMatchObject({ type: 'tool', output: 'x'.repeat(2_000) });
  });

  it('starts a build of its own once the one under way has hung for 30 s, and answers from it', async () => {
    jest.useFakeTimers();
    try {
      const feed = { subscribe: () => ({ close: () => undefined }) } as unknown as ConversationFeed;
      const message = { id: 'a1', author: { role: 'agent', id: 'bot' }, status: 'complete', text: 'hello', cursor: 'e1-1', createdSeq: 1, appliedSeq: 1, parts: 1 } as MessageState;
      let builds = 0;
      // The first read hangs (its connection was cut off); the next one answers.
      const build = (): Promise<ConversationState> =>
        ++builds === 1 ? new Promise(() => undefined) : Promise.resolve({ conversationId: 'c', seq: 1, messages: new Map([['a1', message]]) });
      const kept = new SnapshotKeeper(feed, build, 'e1', 1_000);
      void kept.snapshot();
      await jest.advanceTimersByTimeAsync(29_000);
      void kept.snapshot();
      expect(builds).toBe(1);
      await jest.advanceTimersByTimeAsync(1_000);
      const snapshot = await kept.snapshot();
      expect(builds).toBe(2);
      expect(snapshot.messages.map((m) => m.text)).toEqual(['hello']);
    } finally {
      jest.useRealTimers();
    }
  });
});

