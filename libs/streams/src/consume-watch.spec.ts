import { jest } from '@jest/globals';
import type { ConsumerMessages, ConsumerNotification } from '@nats-io/jetstream';
import { watchConsume } from './consume-watch.js';

/** A consume whose statuses the test pushes, counting its closes. */
function consume() {
  const pushed: ConsumerNotification[] = [];
  let wake: (() => void) | undefined;
  let closes = 0;
  const messages = {
    close: async () => void closes++,
    status: () => ({
      async *[Symbol.asyncIterator]() {
        for (;;) {
          while (pushed.length > 0) yield pushed.shift()!;
          await new Promise<void>((resolve) => (wake = resolve));
        }
      },
    }),
  } as unknown as ConsumerMessages;
  return {
    messages,
    push: async (status: ConsumerNotification) => {
      pushed.push(status);
      wake?.();
      await jest.advanceTimersByTimeAsync(0);
    },
    closes: () => closes,
  };
}

describe('watchConsume', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('closes a consume that hears nothing for the silence, unless its reader is busy with what it has', async () => {
    let busy = true;
    const ends: string[] = [];
    const c = consume();
    watchConsume(c.messages, { heartbeatMs: 1_000, silenceMs: 3_000, busy: () => busy, onEnd: (reason) => ends.push(reason) });
    await jest.advanceTimersByTimeAsync(10_000);
    expect(c.closes()).toBe(0);
    busy = false;
    await jest.advanceTimersByTimeAsync(3_000);
    expect(c.closes()).toBe(0);
    await jest.advanceTimersByTimeAsync(1_000);
    expect({ closes: c.closes(), ends }).toEqual({ closes: 1, ends: ['silent'] });
  });

  it('keeps a consume whose heartbeats come, and closes one whose consumer was deleted', async () => {
    const ends: string[] = [];
    const c = consume();
    watchConsume(c.messages, { heartbeatMs: 1_000, silenceMs: 3_000, busy: () => false, onEnd: (reason) => ends.push(reason) });
    for (let i = 0; i < 10; i++) {
      await jest.advanceTimersByTimeAsync(1_000);
      await c.push({ type: 'heartbeat', lastConsumerSequence: 0, lastStreamSequence: 0 } as ConsumerNotification);
    }
    expect(c.closes()).toBe(0);
    await c.push({ type: 'consumer_deleted', code: 409, description: 'Consumer Deleted' } as ConsumerNotification);
    expect({ closes: c.closes(), ends }).toEqual({ closes: 1, ends: ['consumer_deleted'] });
  });

  it('takes missed heartbeats for a lost consume only while its reader is not busy (one busy pulls nothing)', async () => {
    let busy = true;
    const ends: string[] = [];
    const c = consume();
    watchConsume(c.messages, { heartbeatMs: 1_000, silenceMs: 3_000, busy: () => busy, onEnd: (reason) => ends.push(reason) });
    await c.push({ type: 'heartbeats_missed', count: 2 } as ConsumerNotification);
    expect(c.closes()).toBe(0);
    busy = false;
    await c.push({ type: 'heartbeats_missed', count: 3 } as ConsumerNotification);
    expect({ closes: c.closes(), ends }).toEqual({ closes: 1, ends: ['heartbeats_missed'] });
  });
});
