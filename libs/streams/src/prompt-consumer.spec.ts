import { JetStreamApiCodes, JetStreamApiError, type JetStreamManager } from '@nats-io/jetstream';
import { applyPromptConsumer, ensurePromptConsumer, PROMPT_MAX_DELIVER } from './prompt-consumer.js';

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

describe('applyPromptConsumer on a consumer that exists with other settings', () => {
  /** As nats-server 2.10 and later answer: a create for a durable that exists with other settings is refused. */
  function existing(config: Record<string, unknown>, updateRefused = false) {
    const updates: Record<string, unknown>[] = [];
    const jsm = {
      consumers: {
        add: () => Promise.reject(new JetStreamApiError({ code: 400, err_code: 10148, description: 'consumer already exists' })),
        info: () => Promise.resolve({ config: { ...config } }),
        update: (_stream: string, _name: string, change: Record<string, unknown>) => {
          updates.push(change);
          if (updateRefused) return Promise.reject(new JetStreamApiError({ code: 400, err_code: 10116, description: 'max deliver is required to be > length of backoff values' }));
          return Promise.resolve({ config: { ...config, ...change } });
        },
      },
    } as unknown as JetStreamManager;
    return { jsm, updates };
  }
  const current = { durable_name: 'agents', filter_subject: 'p.prompt.*', deliver_policy: 'all', ack_policy: 'explicit', ack_wait: 30_000_000_000, max_ack_pending: 1_000, max_deliver: PROMPT_MAX_DELIVER };

  it('updates its ack wait in place, where the create that nats-server 2.9 took as an update is refused', async () => {
    const { jsm, updates } = existing(current);
    await expect(applyPromptConsumer(jsm, 'LOG', 'p.prompt.*', 10_000)).resolves.toBe('applied');
    expect(updates).toEqual([{ ack_wait: 10_000_000_000, max_ack_pending: 1_000, max_deliver: PROMPT_MAX_DELIVER }]);
  });

  it('keeps one that differs in what cannot change in place as it is, all of it', async () => {
    const { jsm, updates } = existing({ ...current, filter_subject: 'p.prompt.team-a.*' });
    await expect(applyPromptConsumer(jsm, 'LOG', 'p.prompt.*', 10_000)).resolves.toBe('kept');
    expect(updates).toEqual([]);
  });

  it('keeps one JetStream refuses to update (what it holds allows no other value), so the service still starts', async () => {
    const { jsm, updates } = existing({ ...current, backoff: new Array(12).fill(1_000_000_000) }, true);
    await expect(applyPromptConsumer(jsm, 'LOG', 'p.prompt.*', 10_000)).resolves.toBe('kept');
    expect(updates).toHaveLength(1);
  });
});

