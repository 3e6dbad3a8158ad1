import type { ArgumentsHost } from '@nestjs/common';
import { ErrorCode, SeqlineError } from '@seqline/protocol';
import { pino } from 'pino';
import { ErrorFilter } from './error.filter.js';

/** What the filter answered: the status, the headers it set and the JSON body. */
function answer(error: unknown) {
  const sent: { status?: number; body?: unknown; headers: Record<string, string> } = { headers: {} };
  const response = {
    headersSent: false,
    setHeader: (name: string, value: string) => (sent.headers[name] = value),
    status(code: number) {
      // As Express 5 does: a status that is not a number is a programming error.
      if (!Number.isInteger(code)) throw new TypeError(`Invalid status code: ${String(code)}`);
      sent.status = code;
      return response;
    },
    json: (body: unknown) => (sent.body = body),
  };
  const host = { switchToHttp: () => ({ getResponse: () => response }) } as unknown as ArgumentsHost;
  new ErrorFilter(pino({ level: 'silent' })).catch(error, host);
  return sent;
}

describe('ErrorFilter', () => {
  it('answers a refusal under its code and status', () => {
    expect(answer(new SeqlineError(ErrorCode.MessageFinished, 'the message is already complete'))).toEqual({
      status: 409,
      body: { code: 'MESSAGE_FINISHED', message: 'the message is already complete' },
      headers: {},
    });
  });

  it('passes on, as a JSON 500, a code this version does not know (an owner of a newer version refused a handed-over post)', () => {
    expect(answer(new SeqlineError('SOME_FUTURE_CODE' as ErrorCode, 'refused by a newer owner'))).toEqual({
      status: 500,
      body: { code: 'SOME_FUTURE_CODE', message: 'refused by a newer owner' },
      headers: {},
    });
  });
});
