import { decodeDeliveredEntry, decodeEntry, UndecodableEventError } from './log-entry.js';

const bytes = (value: unknown): Uint8Array => new TextEncoder().encode(typeof value === 'string' ? value : JSON.stringify(value));
const time = new Date('2026-11-25T10:00:00.000Z');
const created = { type: 'message.created', messageId: 'm1', author: { role: 'user', id: 'u' }, status: 'complete', text: 'hi', at: time.toISOString() };

describe('decoding log events', () => {
  it('decodes a known event in full', () => {
    expect(decodeEntry('c1', 7, bytes({ prev: 3, event: created }), time)).toEqual({ conversationId: 'c1', seq: 7, prev: 3, event: created, time });
  });

  it('refuses as undecodable a known event holding text Postgres cannot store (the log schema does), so the persister steps over it rather than failing every batch', () => {
    expect(() => decodeEntry('c1', 7, bytes({ prev: 3, event: { ...created, author: { role: 'user', id: 'u\u0000' } } }), time)).toThrow(UndecodableEventError);
    expect(() => decodeEntry('c1', 7, bytes({ prev: 3, event: { ...created, text: 'a\ud800b' } }), time)).toThrow(UndecodableEventError);
  });

  it('decodes any well-formed text, as the service writes it', () => {
    const event = { type: 'message.appended', messageId: 'm1', part: 1, delta: 'é 😀 \u2028 \\u0000 \t', block: { type: 'tool', id: 'call-😀', toolName: 'search' }, at: new Date().toISOString() };
    expect(decodeEntry('c1', 8, bytes({ prev: 7, event }), time).event).toEqual(event);
  });

  it('keeps an event of a type from a newer version in the chain, marked unknown', () => {
    const event = { type: 'message.reacted', messageId: 'm1', emoji: '+1', at: time.toISOString() };
    const entry = { conversationId: 'c1', seq: 9, prev: 7, event, time, unknownType: 'message.reacted' };
    expect(decodeEntry('c1', 9, bytes({ prev: 7, event }), time)).toEqual(entry);
    expect(decodeDeliveredEntry('c1', 9, bytes({ prev: 7, event }), time)).toEqual({ ...entry, eventJson: JSON.stringify(event) });
  });

  it('keeps an append to a block of a type from a newer version, so the part still counts where the event is checked in full', () => {
    const event = { type: 'message.appended', messageId: 'm1', part: 2, delta: '{"bars":[1,2]}', block: { type: 'chart', id: 'c1', kind: 'bar' }, at: time.toISOString() };
    expect(decodeEntry('c1', 10, bytes({ prev: 9, event }), time)).toEqual({ conversationId: 'c1', seq: 10, prev: 9, event, time });
    // Only the block is taken on trust: the rest of the append is checked as ever, and a block of a known type in full.
    expect(() => decodeEntry('c1', 10, bytes({ prev: 9, event: { ...event, part: 0 } }), time)).toThrow(UndecodableEventError);
    expect(() => decodeEntry('c1', 10, bytes({ prev: 9, event: { ...event, block: { type: 'chart' } } }), time)).toThrow(UndecodableEventError);
    expect(() => decodeEntry('c1', 10, bytes({ prev: 9, event: { ...event, block: { type: 'tool', id: 't1' } } }), time)).toThrow(UndecodableEventError);
  });

  it('holds an event of a newer type, or an append to a newer block, to what Postgres can store and the chain can follow', () => {
    const reacted = { type: 'message.reacted', messageId: 'm1', emoji: '+1', at: time.toISOString() };
    const chart = { type: 'message.appended', messageId: 'm1', part: 2, delta: '{}', block: { type: 'chart', id: 'c1' }, at: time.toISOString() };
    const refused: [string, unknown][] = [
      ['a NUL in the message id', { prev: 7, event: { ...reacted, messageId: 'a\u0000b' } }],
      ['a message id that is no id', { prev: 7, event: { ...reacted, messageId: 'has spaces' } }],
      ['a NUL in a field of its own', { prev: 7, event: { ...reacted, emoji: '\u0000' } }],
      ['an unpaired surrogate', { prev: 7, event: { ...reacted, emoji: '\ud800' } }],
      ['a fractional prev', { prev: 1.5, event: reacted }],
      ['a negative prev', { prev: -1, event: reacted }],
      ['a NUL in a newer block', { prev: 9, event: { ...chart, block: { ...chart.block, kind: 'a\u0000' } } }],
      ['a newer block id too long', { prev: 9, event: { ...chart, block: { ...chart.block, id: 'x'.repeat(129) } } }],
    ];
    const outcome = (record: unknown): string => {
      try {
        decodeEntry('c1', 9, bytes(record), time);
        return 'decoded';
      } catch (error) {
        return error instanceof UndecodableEventError ? 'undecodable' : String(error);
      }
    };
    for (const [name, record] of refused) expect({ name, outcome: outcome(record) }).toEqual({ name, outcome: 'undecodable' });
  });

  it('keeps the event text of a record in the service\'s own form, for frames built around it', () => {
    const event = { ...created, text: 'é "quoted" \\ \u2028 {braces}' };
    expect(decodeDeliveredEntry('c1', 12, bytes({ prev: 0, event }), time).eventJson).toBe(JSON.stringify(event));
    expect(decodeDeliveredEntry('c1', 12, bytes({ prev: 11, event }), time).eventJson).toBe(JSON.stringify(event));
  });

  it('keeps no event text for a record in another form, and decodes it all the same', () => {
    const cases = [
      `{ "prev": 3, "event": ${JSON.stringify(created)} }`,
      JSON.stringify({ event: created, prev: 3 }),
      JSON.stringify({ prev: 3, event: created, extra: true }),
      `{"prev":3,"event":${JSON.stringify(created)}}  `,
      // A repeated `prev`: JSON readers keep the last one, so the text after `event` is not the event.
      `{"prev":3,"event":${JSON.stringify(created)},"prev":4}`,
      // Line breaks between tokens: JSON, but not text an SSE `data:` line can carry.
      `{"prev":3,"event":${JSON.stringify(created, null, 2)}}`,
      `{"prev":3,"event":${JSON.stringify(created).replace(',', ',\r\n')}}`,
    ];
    for (const text of cases) {
      const entry = decodeDeliveredEntry('c1', 13, bytes(text), time);
      expect(entry.eventJson).toBeUndefined();
      expect(entry.event).toEqual(created);
    }
  });

  it('refuses what is not a log record with its sequence', () => {
    const cases: [string, unknown][] = [
      ['not JSON', 'not json {'],
      ['no prev', { event: created }],
      ['a known type with bad fields', { prev: 1, event: { ...created, status: 'done' } }],
      ['no message id', { prev: 1, event: { type: 'message.reacted' } }],
      // Postgres could not store these: text with NUL or half a surrogate pair, or a time it cannot read.
      ['NUL in a text', { prev: 1, event: { ...created, text: 'a\u0000b' } }],
      ['NUL in a block id', { prev: 1, event: { type: 'message.appended', messageId: 'm1', part: 1, delta: 'x', block: { type: 'text', id: 't\u0000' }, at: created.at } }],
      ['half a surrogate pair', { prev: 1, event: { type: 'message.failed', messageId: 'm1', error: 'bad \ud800', at: created.at } }],
      ['a time that is not one', { prev: 1, event: { ...created, at: 'yesterday' } }],
      ['a day that does not exist', { prev: 1, event: { ...created, at: '2026-02-30T10:00:00.000Z' } }],
      ['year 0', { prev: 1, event: { ...created, at: '0000-01-01T00:00:00.000Z' } }],
    ];
    for (const [name, payload] of cases) {
      let caught: unknown;
      try {
        decodeEntry('c1', 11, bytes(payload), time);
      } catch (error) {
        caught = error;
      }
      expect({ name, error: caught instanceof UndecodableEventError, seq: (caught as UndecodableEventError | undefined)?.seq }).toEqual({ name, error: true, seq: 11 });
    }
    expect(() => decodeDeliveredEntry('c1', 12, bytes('not json {'), time)).toThrow(UndecodableEventError);
  });
});
