import { jest } from '@jest/globals';
import type { Msg, Subscription } from '@nats-io/transport-node';
import { loadEnv, settingsFrom } from '@seqline/config';
import type { LogStream, PartitionLeases, PartitionOwner } from '@seqline/streams';
import { ErrorCode, SeqlineError } from '@seqline/protocol';
import { pino } from 'pino';
import { MetricsService } from '../metrics/metrics.service.js';
import { AgentListener } from './agent-listener.service.js';
import { CommandsInFlight, MAX_COMMANDS_IN_FLIGHT } from './commands-in-flight.js';
import type { ConversationWriter, WriteResult } from './conversation-writer.service.js';
import type { WriteRouter } from './write-router.service.js';

const decoder = new TextDecoder();

/** A listener on fake NATS whose writes resolve when the test says, and whose drain ends only if `drains`. */
function build(drains: boolean, write?: () => Promise<WriteResult>, env: Record<string, string> = {}) {
  const deliver = new Map<string, (error: Error | null, msg: Msg) => void>();
  const subscriptions = new Map<string, Subscription>();
  const stream = {
    nc: {
      info: { max_payload: 1024 * 1024 },
      subscribe: (subject: string, options: { callback: (error: Error | null, msg: Msg) => void }) => {
        deliver.set(subject, options.callback);
        const subscription = {
          drain: jest.fn(() => (drains ? Promise.resolve() : new Promise<void>(() => undefined))),
          unsubscribe: jest.fn(),
        } as unknown as Subscription;
        subscriptions.set(subject, subscription);
        return subscription;
      },
    },
    subjects: { allAgent: 'p.agent.*', writerBatch: (writer: string) => `p.writer.batch.${writer}`, conversationOf: () => 'c1' },
  } as unknown as LogStream;
  const finishWrite: Array<(result: WriteResult) => void> = [];
  const router = { write: jest.fn(write ?? (() => new Promise<WriteResult>((resolve) => finishWrite.push(resolve)))), answered: async () => undefined } as unknown as WriteRouter;
  const partitions = { start: () => undefined, stop: async () => undefined, holder: 'me' } as unknown as PartitionLeases;
  const logs: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => logs.push(JSON.parse(line) as Record<string, unknown>) });
  const metrics = new MetricsService();
  const listener = new AgentListener(stream, router, {} as ConversationWriter, metrics, partitions, settingsFrom(loadEnv(env)), logger, new CommandsInFlight());
  listener.onApplicationBootstrap();
  const replies: unknown[] = [];
  const message = (subject: string, data: string) =>
    ({ subject, reply: '_INBOX.1', data: new TextEncoder().encode(data), respond: (bytes: Uint8Array) => replies.push(JSON.parse(decoder.decode(bytes))) }) as unknown as Msg;
  const append = (part: number) => JSON.stringify({ type: 'message.append', messageId: 'm1', part, delta: 'hi' });
  const send = (): void => deliver.get('p.agent.*')!(null, message('p.agent.c1', append(1)));
  const sendBatch = (parts: number[]): void => deliver.get('p.writer.batch.me')!(null, message('p.writer.batch.me', parts.map((part) => `c1 ${append(part)}`).join('\n')));
  return { listener, send, sendBatch, finishWrite, replies, subscriptions, router, logs, metrics };
}

describe('AgentListener shutdown', () => {
  afterEach(() => jest.useRealTimers());

  it('answers the commands it has taken before it finishes shutting down', async () => {
    const { listener, send, finishWrite, replies, router } = build(true);
    send();
    await new Promise((resolve) => setImmediate(resolve));
    expect(router.write).toHaveBeenCalledTimes(1);
    let stopped = false;
    const stopping = listener.onApplicationShutdown().then(() => (stopped = true));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(stopped).toBe(false);
    finishWrite[0]!({ cursor: 'e-7', duplicate: false });
    await stopping;
    expect(replies).toEqual([{ ok: true, cursor: 'e-7', duplicate: false }]);
  });

  it('ends within its time limits when NATS never finishes the drain and a write never ends', async () => {
    jest.useFakeTimers();
    const { listener, send, replies, subscriptions } = build(false);
    send();
    await jest.advanceTimersByTimeAsync(0);
    let stopped = false;
    const stopping = listener.onApplicationShutdown().then(() => (stopped = true));
    await jest.advanceTimersByTimeAsync(2_000);
    // The drain was cut short; the command still has its own wait.
    for (const subject of ['p.agent.*', 'p.writer.batch.me']) expect(subscriptions.get(subject)!.unsubscribe).toHaveBeenCalledTimes(1);
    expect(stopped).toBe(false);
    await jest.advanceTimersByTimeAsync(5_000);
    await stopping;
    expect(stopped).toBe(true);
    // Unanswered: its agent retries it on another instance under the same message id.
    expect(replies).toEqual([]);
  });
});

describe('AgentListener answering a batch', () => {
  afterEach(() => jest.useRealTimers());

  it('answers the commands written within 250 ms, and a slower one UNAVAILABLE so its agent sends it again on its own', async () => {
    jest.useFakeTimers();
    const { sendBatch, finishWrite, replies } = build(true);
    sendBatch([1, 2, 3]);
    await jest.advanceTimersByTimeAsync(0);
    finishWrite[0]!({ cursor: 'e-1', duplicate: false, writer: 'me' });
    finishWrite[2]!({ cursor: 'e-3', duplicate: true, writer: 'me' });
    await jest.advanceTimersByTimeAsync(249);
    expect(replies).toEqual([]);
    await jest.advanceTimersByTimeAsync(1);
    expect(replies).toEqual([
      {
        replies: [
          { ok: true, cursor: 'e-1', duplicate: false, writer: 'me' },
          { ok: false, error: { code: 'UNAVAILABLE', message: 'not written within 250 ms of the batch; send it again on its own' } },
          { ok: true, cursor: 'e-3', duplicate: true, writer: 'me' },
        ],
      },
    ]);
  });
});

describe('AgentListener taking a write partition over', () => {
  it('drops the states it cached for that partition while another instance owned it, before serving it', () => {
    let owner: PartitionOwner | undefined;
    const calls: string[] = [];
    const stream = {
      nc: { info: { max_payload: 1024 * 1024 }, subscribe: (subject: string) => (calls.push(`listen ${subject}`), { drain: async () => undefined, unsubscribe: () => undefined }) },
      subjects: { allAgent: 'p.agent.*', writerBatch: (writer: string) => `p.writer.batch.${writer}`, partitionWriter: (partition: number) => `p.writer.${partition}.*`, conversationOf: () => 'c1' },
    } as unknown as LogStream;
    const router = { serve: (partition: number) => (calls.push(`serve ${partition}`), { drain: async () => undefined, unsubscribe: () => undefined }) } as unknown as WriteRouter;
    const writer = { forgetPartition: (partition: number) => calls.push(`forget ${partition}`) } as unknown as ConversationWriter;
    const partitions = { start: (given: PartitionOwner) => (owner = given), stop: async () => undefined, holder: 'me' } as unknown as PartitionLeases;
    const listener = new AgentListener(stream, router, writer, new MetricsService(), partitions, settingsFrom(loadEnv({})), pino({ level: 'silent' }), new CommandsInFlight());
    listener.onApplicationBootstrap();
    owner!.acquired(3);
    expect(calls).toEqual(['listen p.agent.*', 'listen p.writer.batch.me', 'forget 3', 'listen p.writer.3.*', 'serve 3']);
  });

  it('gives a partition up only once the commands it took for it are answered, and forgets its states after them', async () => {
    let owner: PartitionOwner | undefined;
    const deliver = new Map<string, (error: Error | null, msg: Msg) => void>();
    const calls: string[] = [];
    const stream = {
      nc: {
        info: { max_payload: 1024 * 1024 },
        subscribe: (subject: string, options: { callback: (error: Error | null, msg: Msg) => void }) => (deliver.set(subject, options.callback), { drain: async () => undefined, unsubscribe: () => undefined }),
      },
      subjects: { allAgent: 'p.agent.*', writerBatch: (writer: string) => `p.writer.batch.${writer}`, partitionWriter: (partition: number) => `p.writer.${partition}.*`, conversationOf: () => 'c1' },
    } as unknown as LogStream;
    let finishHandedOver!: () => void;
    const handedOver = new Promise<void>((resolve) => (finishHandedOver = resolve));
    let finishWrite!: (result: WriteResult) => void;
    const router = {
      serve: () => ({ drain: async () => undefined, unsubscribe: () => undefined }),
      answered: () => handedOver,
      write: () => new Promise<WriteResult>((resolve) => (finishWrite = (result) => (calls.push('written'), resolve(result)))),
    } as unknown as WriteRouter;
    const writer = { forgetPartition: (partition: number) => calls.push(`forget ${partition}`) } as unknown as ConversationWriter;
    const partitions = { start: (given: PartitionOwner) => (owner = given), stop: async () => undefined, holder: 'me' } as unknown as PartitionLeases;
    const listener = new AgentListener(stream, router, writer, new MetricsService(), partitions, settingsFrom(loadEnv({})), pino({ level: 'silent' }), new CommandsInFlight());
    listener.onApplicationBootstrap();
    owner!.acquired(3);
    calls.length = 0;
    const data = new TextEncoder().encode(JSON.stringify({ type: 'message.append', messageId: 'm1', part: 1, delta: 'hi' }));
    deliver.get('p.writer.3.*')!(null, { subject: 'p.writer.3.c1', reply: '_INBOX.1', data, respond: () => true } as unknown as Msg);
    await new Promise((resolve) => setImmediate(resolve));
    let released = false;
    const releasing = Promise.resolve(owner!.released(3)).then(() => (released = true));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect([released, calls]).toEqual([false, []]);
    finishWrite({ cursor: 'e-7', duplicate: false });
    await new Promise((resolve) => setTimeout(resolve, 50));
    // A write another instance handed over is still being answered.
    expect([released, calls]).toEqual([false, ['written']]);
    finishHandedOver();
    await releasing;
    expect(calls).toEqual(['written', 'forget 3']);
  });
});

describe('AgentListener refusals', () => {
  it('logs a refusal code once per interval with a count, and counts a code it does not know as other', async () => {
    // An owner of a newer version refusing with a code this version does not know, then this version's own refusal.
    let refusal = new SeqlineError('SOME_FUTURE_CODE' as ErrorCode, 'refused by a newer owner');
    const { send, replies, logs, metrics } = build(true, () => Promise.reject(refusal));
    for (let i = 0; i < 100; i++) send();
    refusal = new SeqlineError(ErrorCode.MessageFinished, 'the message is already complete');
    for (let i = 0; i < 50; i++) send();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(replies).toHaveLength(150);
    expect(replies[0]).toEqual({ ok: false, error: { code: 'SOME_FUTURE_CODE', message: 'refused by a newer owner' } });
    expect(logs.filter((line) => line.msg === 'agent command refused').map((line) => [line.code, line.suppressed])).toEqual([
      ['SOME_FUTURE_CODE', 0],
      ['MESSAGE_FINISHED', 0],
    ]);
    const text = await metrics.registry.metrics();
    expect(text).toContain('seqline_commands_refused_total{code="other"} 100');
    expect(text).toContain('seqline_commands_refused_total{code="MESSAGE_FINISHED"} 50');
    expect(text).not.toContain('SOME_FUTURE_CODE');
  });
});

describe('AgentListener under more commands than it may hold', () => {
  it('refuses commands past its limit UNAVAILABLE at once, a batch line by line, counting a batch until its lines are written, not answered', async () => {
    // Writes that never end (Postgres stalled): every command taken stays in flight.
    const { send, sendBatch, replies, finishWrite } = build(true, undefined, { LIMIT_AGENT_COMMANDS_PER_SECOND: '1000000' });
    for (let i = 0; i < MAX_COMMANDS_IN_FLIGHT - 3; i++) send();
    sendBatch([1, 2]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(finishWrite).toHaveLength(MAX_COMMANDS_IN_FLIGHT - 1);
    // The batch is answered (its lines still being written) and still counts.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const stillWriting = { ok: false, error: { code: 'UNAVAILABLE', message: 'not written within 250 ms of the batch; send it again on its own' } };
    expect(replies).toEqual([{ replies: [stillWriting, stillWriting] }]);
    // A batch of two does not fit in the one place left; a single command does.
    sendBatch([3, 4]);
    send();
    await new Promise((resolve) => setImmediate(resolve));
    const shed = { ok: false, error: { code: 'UNAVAILABLE', message: `the instance holds ${MAX_COMMANDS_IN_FLIGHT} commands not answered yet; retry shortly` } };
    expect(replies.slice(1)).toEqual([{ replies: [shed, shed] }]);
    expect(finishWrite).toHaveLength(MAX_COMMANDS_IN_FLIGHT);
    send();
    await new Promise((resolve) => setImmediate(resolve));
    expect(replies.slice(1)).toEqual([{ replies: [shed, shed] }, shed]);
    // One written: room for one more.
    finishWrite[0]!({ cursor: 'e-1', duplicate: false });
    await new Promise((resolve) => setImmediate(resolve));
    send();
    await new Promise((resolve) => setImmediate(resolve));
    expect(finishWrite).toHaveLength(MAX_COMMANDS_IN_FLIGHT + 1);
  });
});
