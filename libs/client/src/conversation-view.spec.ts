import fc from 'fast-check';
import type { ConversationEvent, LogEvent } from '../../protocol/src/events.js';
import type { Message } from '../../protocol/src/message.js';
import { applyEvent } from '../../protocol/src/message-reducer.js';
import { ConversationView } from './conversation-view.js';

const EPOCH = 'e1';
const at = '2026-01-01T00:00:00.000Z';

/** A true conversation log: messages created, appended and ended in an interleaved order, with non-contiguous sequences. */
const logArbitrary = fc
  .record({
    schedule: fc.array(fc.nat(2), { minLength: 1, maxLength: 60 }),
    appends: fc.array(fc.nat(8), { minLength: 3, maxLength: 3 }),
    gaps: fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 60, maxLength: 60 }),
    ends: fc.array(fc.constantFrom('message.completed', 'message.aborted', 'message.failed'), { minLength: 3, maxLength: 3 }),
  })
  .map(({ schedule, appends, gaps, ends }) => {
    const progress = [0, 0, 0].map(() => ({ created: false, parts: 0, ended: false }));
    const events: ConversationEvent[] = [];
    let seq = 0;
    for (const k of schedule) {
      const state = progress[k]!;
      const messageId = `m${k}`;
      let event: LogEvent | undefined;
      if (!state.created) {
        state.created = true;
        event = { type: 'message.created', messageId, author: { role: 'agent', id: `a${k}` }, status: 'streaming', text: `<${k}>`, at };
      } else if (state.parts < appends[k]!) {
        state.parts++;
        event = { type: 'message.appended', messageId, part: state.parts, delta: ` ${k}.${state.parts}`, at };
      } else if (!state.ended) {
        state.ended = true;
        const type = ends[k]!;
        event = type === 'message.completed' ? { type, messageId, at } : type === 'message.aborted' ? { type, messageId, reason: 'r', at } : { type, messageId, error: 'e', at };
      }
      if (!event) continue;
      const prev = seq;
      seq += gaps[events.length]!;
      events.push({ conversationId: 'c', cursor: `${EPOCH}-${seq}`, prev: `${EPOCH}-${prev}`, event });
    }
    return events;
  });

/** The true messages after the first `count` events. */
function truthAfter(log: ConversationEvent[], count: number): Message[] {
  const messages = new Map<string, Message>();
  for (const event of log.slice(0, count)) applyEvent(messages, event.event, event.cursor);
  return [...messages.values()];
}

function sorted(messages: Message[]): Message[] {
  return [...messages].sort((a, b) => a.id.localeCompare(b.id));
}

/** How many true events the view has applied, judged by its cursor. */
function position(log: ConversationEvent[], view: ConversationView): number {
  return view.cursor === undefined ? 0 : log.findIndex((event) => event.cursor === view.cursor) + 1;
}

describe('ConversationView (property)', () => {
  it('fed events shuffled, repeated, truncated and gapped, it always equals the true conversation at its cursor', () => {
    fc.assert(
      fc.property(logArbitrary, fc.array(fc.nat(200), { maxLength: 150 }), (log, picks) => {
        const view = new ConversationView('c');
        for (const pick of picks) {
          if (log.length === 0) break;
          const before = view.cursor;
          const result = view.apply(log[pick % log.length]!);
          if (result !== 'applied') expect(view.cursor).toBe(before);
          expect(sorted(view.list())).toEqual(sorted(truthAfter(log, position(log, view))));
        }
      }),
      { numRuns: 500 },
    );
  });

  it('repairing each gap from its cursor (as a resubscribe does) ends with exactly the true text', () => {
    fc.assert(
      fc.property(logArbitrary, fc.array(fc.nat(200), { maxLength: 150 }), fc.nat(10), (log, picks, lostAtEnd) => {
        const view = new ConversationView('c');
        const repair = (): void => {
          // The server replays everything after the device's cursor, in order.
          for (const event of log.slice(position(log, view))) expect(view.apply(event)).toBe('applied');
        };
        for (const pick of picks) {
          if (log.length === 0) break;
          if (view.apply(log[pick % log.length]!) === 'gap' && pick % 3 === 0) repair();
        }
        // A truncated delivery leaves the view behind but correct; the final repair completes it.
        expect(sorted(view.list())).toEqual(sorted(truthAfter(log, position(log, view))));
        void lostAtEnd;
        repair();
        expect(sorted(view.list())).toEqual(sorted(truthAfter(log, log.length)));
        expect(view.cursor).toBe(log.at(-1)?.cursor);
      }),
      { numRuns: 500 },
    );
  });

  it('takes a snapshot when the server can no longer replay, then continues from it', () => {
    fc.assert(
      fc.property(logArbitrary, fc.nat(100), fc.nat(100), (log, seen, snapshotAt) => {
        if (log.length === 0) return;
        const view = new ConversationView('c');
        for (const event of log.slice(0, seen % log.length)) view.apply(event);
        const cut = Math.max(position(log, view), snapshotAt % (log.length + 1));
        view.reset({ cursor: cut === 0 ? `${EPOCH}-0` : log[cut - 1]!.cursor, messages: truthAfter(log, cut) });
        for (const event of log) view.apply(event);
        expect(sorted(view.list())).toEqual(sorted(truthAfter(log, log.length)));
      }),
      { numRuns: 300 },
    );
  });
});

describe('ConversationView', () => {
  const answer: Message = { id: 'm1', author: { role: 'agent', id: 'a' }, status: 'streaming', text: 'Hel', parts: 1, createdAt: at, updatedAt: at, cursor: `${EPOCH}-3` };

  it('calls an event that follows the cursor but does not fit the messages a mismatch, not a gap, and leaves the view as it was', () => {
    const view = new ConversationView('c');
    view.reset({ cursor: `${EPOCH}-5`, messages: [answer] });
    // Part 3 after part 1: the stored state lost part 2, though its cursor says otherwise.
    const result = view.apply({ conversationId: 'c', cursor: `${EPOCH}-6`, prev: `${EPOCH}-5`, event: { type: 'message.appended', messageId: 'm1', part: 3, delta: 'lo', at } });
    expect(result).toBe('mismatch');
    expect(view.cursor).toBe(`${EPOCH}-5`);
    expect(view.list()).toEqual([answer]);
    // Not following the cursor is still a gap.
    expect(view.apply({ conversationId: 'c', cursor: `${EPOCH}-9`, prev: `${EPOCH}-8`, event: { type: 'message.completed', messageId: 'm1', at } })).toBe('gap');
  });

  it('takes an event of a type it does not know as a step of the chain that changes no message', () => {
    const view = new ConversationView('c');
    view.reset({ cursor: `${EPOCH}-5`, messages: [answer] });
    // From a newer server: one names a known message, one a message this device never saw.
    const reacted = { type: 'message.reacted', messageId: 'm1', emoji: '+1', at } as unknown as LogEvent;
    const pinned = { type: 'conversation.pinned', at } as unknown as LogEvent;
    expect(view.apply({ conversationId: 'c', cursor: `${EPOCH}-6`, prev: `${EPOCH}-5`, event: reacted })).toBe('applied');
    expect(view.apply({ conversationId: 'c', cursor: `${EPOCH}-8`, prev: `${EPOCH}-6`, event: pinned })).toBe('applied');
    expect(view.cursor).toBe(`${EPOCH}-8`);
    expect(view.list()).toEqual([answer]);
    expect(view.toStored()).toEqual({ cursor: `${EPOCH}-8`, messages: [answer] });
    // The chain goes on from there.
    expect(view.apply({ conversationId: 'c', cursor: `${EPOCH}-9`, prev: `${EPOCH}-8`, event: { type: 'message.appended', messageId: 'm1', part: 2, delta: 'lo', at } })).toBe('applied');
    expect(view.list().map((m) => m.text)).toEqual(['Hello']);
  });
});
