import { decodeDeliveredEntry, toConversationEvent } from '@seqline/streams';
import { FeedEvent } from './feed-event.js';

const time = new Date('2026-11-25T10:00:00.000Z');
const appended = { type: 'message.appended', messageId: 'm1', part: 3, delta: 'é "quoted" \\ \u2028 </script>', at: time.toISOString() };

/** The frames as they were always built: by serialising the whole object. */
function expected(entry: ReturnType<typeof decodeDeliveredEntry>) {
  const event = toConversationEvent(entry, 'mwv2oxpk');
  return { ws: JSON.stringify({ type: 'event', ...event }), sse: `id: ${event.cursor}\ndata: ${JSON.stringify(event)}\n\n` };
}

describe('FeedEvent', () => {
  it.each([
    ['taken from the log', (text: string) => text],
    ['serialised (a record in another form)', (text: string) => ` ${text}`],
    ['serialised (a record with line breaks between its tokens)', (text: string) => text.replace(',"event":{', ',"event":{\n').replace(',"part"', ',\r\n"part"')],
  ])('builds the same frames as serialising the event, with its JSON %s', (_how, form) => {
    const data = new TextEncoder().encode(form(JSON.stringify({ prev: 41, event: appended })));
    const entry = decodeDeliveredEntry('conv "1"', 42, data, time);
    const event = new FeedEvent(entry, 'mwv2oxpk', data.length);
    const { ws, sse } = expected(entry);
    // A text frame shorter than 126 bytes has a 2-byte header, longer ones (as here) a 4-byte one.
    expect(event.wsFrame.subarray(4).toString()).toBe(ws);
    expect(JSON.parse(event.wsFrame.subarray(4).toString())).toEqual({ type: 'event', conversationId: 'conv "1"', cursor: 'mwv2oxpk-42', prev: 'mwv2oxpk-41', event: appended });
    expect(event.sseFrame.toString()).toBe(sse);
  });
});
