import { ErrorCode, SeqlineError } from '@seqline/protocol';
import { readOwnerReply } from './write-router.service.js';

const bytes = (value: unknown): Uint8Array => new TextEncoder().encode(typeof value === 'string' ? value : JSON.stringify(value));

describe("readOwnerReply (a partition owner's answer to a handed-over write)", () => {
  it('reads a success and a refusal', () => {
    expect(readOwnerReply(bytes({ ok: true, cursor: 'e1-7', duplicate: false }))).toEqual({ ok: true, cursor: 'e1-7', duplicate: false });
    expect(readOwnerReply(bytes({ ok: false, error: { code: 'MESSAGE_EXISTS', message: 'taken' } }))).toEqual({ ok: false, error: { code: 'MESSAGE_EXISTS', message: 'taken' } });
  });

  it.each([
    ['not JSON', 'nope'],
    ['another shape', { done: true }],
  ])('turns an answer it cannot read (%s) into a retryable UNAVAILABLE', (_, value) => {
    let thrown: unknown;
    try {
      readOwnerReply(bytes(value));
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(SeqlineError);
    expect((thrown as SeqlineError).code).toBe(ErrorCode.Unavailable);
    expect((thrown as SeqlineError).message).toMatch(/^the instance writing this conversation answered in a form this one cannot read \(.+\); retry shortly$/);
  });
});
