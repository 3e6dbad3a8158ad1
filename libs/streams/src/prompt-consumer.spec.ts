import { JetStreamApiCodes, JetStreamApiError, type JetStreamManager } from '@nats-io/jetstream';
import { ensurePromptConsumer } from './prompt-consumer.js';

/** A JetStream manager whose consumer `info` fails as given, recording every `add`. */
function manager(infoFails: () => Error | undefined) {
  const added: string[] = [];
  const jsm = {
    consumers: {
      info: (_stream: string, name: string) => {
        const error = infoFails();
        return error ? Promise.reject(error) : Promise.resolve({ name });
      },
      add: (_stream: string, config: { durable_name: string }) => {
        added.push(config.durable_name);
        return Promise.resolve({ name: config.durable_name });
      },
    },
  } as unknown as JetStreamManager;
  return { jsm, added };
}

describe('ensurePromptConsumer', () => {
  it('creates the group consumer when JetStream says it does not exist', async () => {
    let calls = 0;
    const { jsm, added } = manager(() => (++calls === 1 ? new JetStreamApiError({ code: 404, err_code: JetStreamApiCodes.ConsumerNotFound, description: 'consumer not found' }) : undefined));
    await ensurePromptConsumer(jsm, 'LOG', 'p.prompt.*', 'agents');
    expect(added).toEqual(['agents']);
  });

  it('leaves an existing consumer alone', async () => {
    const { jsm, added } = manager(() => undefined);
    await ensurePromptConsumer(jsm, 'LOG', 'p.prompt.*', 'agents');
    expect(added).toEqual([]);
  });

  it('adds nothing when it cannot tell (a timeout): adding again would put the default settings over the service’s', async () => {
    const { jsm, added } = manager(() => new Error('TIMEOUT'));
    await expect(ensurePromptConsumer(jsm, 'LOG', 'p.prompt.*', 'agents')).rejects.toThrow('TIMEOUT');
    expect(added).toEqual([]);
  });
});
