import { z } from 'zod';
import { ErrorCode, SeqlineError } from './errors.js';
import { parseFrame, toSeqlineError } from './frame-parser.js';

const Schema = z.discriminatedUnion('type', [z.object({ type: z.literal('ping'), id: z.string().min(1) }), z.object({ type: z.literal('pong') })]);
const rules = { what: 'frame', maxBytes: 32 };
const codeOf = (raw: string | Uint8Array): string => {
  try {
    parseFrame(Schema, raw, rules);
    return 'ok';
  } catch (error) {
    return (error as SeqlineError).code;
  }
};

describe('parseFrame', () => {
  it.each([
    ['{"type":"ping","id":"a"}', 'ok'],
    ['{"type":"ping","id":"' + 'x'.repeat(40) + '"}', ErrorCode.FrameTooLarge],
    ['{"type":', ErrorCode.BadFrame],
    ['[1]', ErrorCode.BadFrame],
    ['"text"', ErrorCode.BadFrame],
    ['null', ErrorCode.BadFrame],
    ['{"id":"a"}', ErrorCode.BadFrame],
    ['{"type":"teleport"}', ErrorCode.BadFrame],
    ['{"type":"ping"}', ErrorCode.ValidationFailed],
    ['{"type":"ping","id":""}', ErrorCode.ValidationFailed],
  ])('%s → %s', (raw, code) => {
    expect(codeOf(raw)).toBe(code);
    expect(codeOf(new TextEncoder().encode(raw))).toBe(code);
  });

  it('refuses bytes that are not UTF-8 (half of an emoji) instead of taking them as U+FFFD', () => {
    const half = Uint8Array.from([...new TextEncoder().encode('{"type":"ping","id":"a'), 0xf0, 0x9f, ...new TextEncoder().encode('"}')]);
    expect(() => parseFrame(Schema, half, rules)).toThrow(new SeqlineError(ErrorCode.BadFrame, 'frame is not valid UTF-8'));
    expect(parseFrame(Schema, new TextEncoder().encode('{"type":"ping","id":"a😀"}'), rules)).toEqual({ type: 'ping', id: 'a😀' });
  });

  it('counts the limit in UTF-8 bytes, not characters', () => {
    expect(codeOf(`{"type":"ping","id":"${'é'.repeat(4)}"}`)).toBe('ok');
    expect(codeOf(`{"type":"ping","id":"${'é'.repeat(5)}"}`)).toBe(ErrorCode.FrameTooLarge);
  });

  it('names each refused field', () => {
    expect(() => parseFrame(Schema, '{"type":"ping"}', rules)).toThrow(/^id: /);
  });

  it('refuses text that is not well-formed: NUL, or half of a surrogate pair', () => {
    const Nested = z.object({ type: z.literal('post'), parts: z.array(z.object({ text: z.string() })) });
    const refusal = (raw: string): unknown => {
      try {
        parseFrame(Nested, raw, { what: 'frame' });
        return 'ok';
      } catch (error) {
        return (error as SeqlineError).toBody();
      }
    };
    const message = (path: string) => `${path}: text must be well-formed Unicode, without NUL characters or unpaired surrogates`;
    expect(refusal('{"type":"post","parts":[{"text":"a"},{"text":"b\\u0000c"}]}')).toEqual({ code: ErrorCode.ValidationFailed, message: message('parts.1.text') });
    expect(refusal('{"type":"post","parts":[{"text":"\\ud83d"}]}')).toEqual({ code: ErrorCode.ValidationFailed, message: message('parts.0.text') });
    expect(refusal('{"type":"post","parts":[{"text":"x\\ude00"}]}')).toEqual({ code: ErrorCode.ValidationFailed, message: message('parts.0.text') });
    // A whole pair, escaped or not, is text.
    expect(refusal('{"type":"post","parts":[{"text":"\\ud83d\\ude00 😀"}]}')).toBe('ok');
  });
});

describe('toSeqlineError', () => {
  it('keeps protocol errors and hides anything else behind the fallback', () => {
    const known = new SeqlineError(ErrorCode.Fenced, 'taken over');
    expect(toSeqlineError(known)).toBe(known);
    expect(toSeqlineError(new Error('secret detail')).toBody()).toEqual({ code: ErrorCode.Internal, message: 'internal error' });
    expect(toSeqlineError(new Error('socket closed'), ErrorCode.Unavailable).code).toBe(ErrorCode.Unavailable);
  });
});
