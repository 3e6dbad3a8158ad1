import type { Writable } from 'node:stream';
import * as ws from 'ws';
import { PING_FRAME, textFrame } from './text-frame.js';

// ws exports its frame parser at run time; its type declarations leave it out.
const { Receiver } = ws as unknown as { Receiver: new (options: { isServer: boolean; maxPayload: number }) => Writable };

/** What ws's own parser (the one every Node client uses) reads back from the bytes. */
function parse(bytes: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const receiver = new Receiver({ isServer: false, maxPayload: 0 });
    receiver.on('message', (data: Buffer, isBinary: boolean) => (isBinary ? reject(new Error('binary frame')) : resolve(data.toString())));
    receiver.on('ping', (data: Buffer) => resolve(`ping:${data.length}`));
    receiver.on('error', reject);
    receiver.write(bytes);
  });
}

describe('textFrame', () => {
  it.each([0, 1, 125, 126, 1_000, 65_535, 65_536, 200_000])('frames a %i-byte payload as one unmasked text frame ws reads back exactly', async (length) => {
    const text = 'é'.repeat(Math.floor(length / 2)) + 'x'.repeat(length % 2);
    expect(Buffer.byteLength(text)).toBe(length);
    const frame = textFrame(text);
    expect(frame[0]).toBe(0x81);
    expect(frame[1]! & 0x80).toBe(0);
    await expect(parse(frame)).resolves.toBe(text);
  });
});

describe('PING_FRAME', () => {
  it('is an empty ping ws reads as one', async () => {
    await expect(parse(PING_FRAME)).resolves.toBe('ping:0');
  });
});
