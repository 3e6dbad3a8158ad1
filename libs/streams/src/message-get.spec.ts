import { LeaderUnavailableError } from './election-retry.js';
import { LogReadError, parseMessageGet } from './conversation-log.js';

const encode = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));

describe('parseMessageGet', () => {
  it('returns the message with its data decoded and its time', () => {
    const reply = encode({
      type: 'io.nats.jetstream.api.v1.stream_msg_get_response',
      message: { subject: 'sq.log.c1', seq: 42, data: Buffer.from('{"prev":7}').toString('base64'), time: '2026-12-04T22:39:11.123456789Z' },
    });
    const message = parseMessageGet(reply)!;
    expect({ subject: message.subject, seq: message.seq, data: new TextDecoder().decode(message.data), time: message.time.toISOString() }).toEqual({
      subject: 'sq.log.c1',
      seq: 42,
      data: '{"prev":7}',
      time: '2026-12-04T22:39:11.123Z',
    });
  });

  it('returns null when the stream has no such message', () => {
    expect(parseMessageGet(encode({ error: { code: 404, err_code: 10037, description: 'no message found' } }))).toBeNull();
  });

  it('throws a retryable error while the stream has no leader', () => {
    expect(() => parseMessageGet(encode({ error: { code: 503, err_code: 10008, description: 'JetStream system temporarily unavailable' } }))).toThrow(LeaderUnavailableError);
  });

  it('throws for any other refusal, the missing stream included', () => {
    expect(() => parseMessageGet(encode({ error: { code: 404, err_code: 10059, description: 'stream not found' } }))).toThrow(new LogReadError('stream not found', 10059));
  });
});
