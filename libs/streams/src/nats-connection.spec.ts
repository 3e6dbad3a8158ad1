import { connectNats, NatsUnreachableError, withoutCredentials } from './nats-connection.js';

describe('NATS connection errors', () => {
  it('never show a user or password given in NATS_URL', () => {
    expect(withoutCredentials('nats://bob:s3cr@t/x@nats-1:4222,nats://nats-2:4222,alice:pw@nats-3')).toBe('nats://***@nats-1:4222,nats://nats-2:4222,***@nats-3');
    expect(withoutCredentials('nats://127.0.0.1:4222')).toBe('nats://127.0.0.1:4222');
  });

  it('say which server could not be reached, without its password', async () => {
    // Nothing listens on port 1.
    const failure = connectNats({ url: 'nats://bob:hunter2@127.0.0.1:1', name: 'spec' });
    await expect(failure).rejects.toBeInstanceOf(NatsUnreachableError);
    const message = ((await failure.catch((error: unknown) => error)) as Error).message;
    expect(message).toMatch(/^Cannot reach NATS at nats:\/\/\*\*\*@127\.0\.0\.1:1 \(/);
    expect(message).not.toContain('hunter2');
  });
});
