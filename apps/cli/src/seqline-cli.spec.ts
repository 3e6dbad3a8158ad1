import { errors } from '@nats-io/transport-node';
import { failureOf } from './seqline-cli.js';

describe('failureOf (a command failure under --json)', () => {
  it('answers UNAVAILABLE when JetStream could not serve a request, which running it again may get past, and INTERNAL for anything else', () => {
    expect(failureOf(new errors.TimeoutError())).toEqual({ code: 'UNAVAILABLE', message: 'timeout' });
    expect(failureOf(new Error('a fault of the command itself'))).toEqual({ code: 'INTERNAL', message: 'a fault of the command itself' });
  });
});
