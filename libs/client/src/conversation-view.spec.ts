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
