import type { Msg } from '@nats-io/transport-node';
import type { LogStream, PartitionLeases } from '@seqline/streams';
import { pino } from 'pino';
import { MetricsService } from '../metrics/metrics.service.js';
import { CommandsInFlight, MAX_COMMANDS_IN_FLIGHT, SHED_REPLY } from './commands-in-flight.js';
import type { ConversationWriter, WriteResult } from './conversation-writer.service.js';
import { WriteRouter } from './write-router.service.js';

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A router serving one partition on fake NATS, over a writer whose writes end when the test says. */
function serving(commands: CommandsInFlight) {
  let deliver!: (error: Error | null, msg: Msg) => void;
  const stream = {
    nc: {
      info: { max_payload: 1024 * 1024 },
      subscribe: (_subject: string, options: { callback: (error: Error | null, msg: Msg) => void }) => {
        deliver = options.callback;
        return { unsubscribe: () => undefined };
      },
    },
    subjects: { partitionForward: (partition: number) => `p.forward.${partition}.*`, conversationOf: () => 'c1' },
  } as unknown as LogStream;
  const finishWrite: Array<(result: WriteResult) => void> = [];
  const writer = { write: () => new Promise<WriteResult>((resolve) => finishWrite.push(resolve)) } as unknown as ConversationWriter;
  const router = new WriteRouter(writer, { holder: 'me' } as PartitionLeases, stream, new MetricsService(), pino({ level: 'silent' }), commands);
  router.serve(0);
  const replies: unknown[] = [];
  const handOver = (part: number): void =>
    deliver(null, {
      subject: 'p.forward.0.c1',
      reply: '_INBOX.1',
      data: new TextEncoder().encode(JSON.stringify({ type: 'message.append', messageId: 'm1', part, delta: 'hi' })),
      respond: (bytes: Uint8Array) => replies.push(JSON.parse(new TextDecoder().decode(bytes))),
    } as unknown as Msg);
  return { handOver, finishWrite, replies };
}

describe('WriteRouter answering writes handed over by other instances', () => {
  it('counts them with the commands the instance holds, refusing past the limit UNAVAILABLE at once, until they are written', async () => {
    const commands = new CommandsInFlight();
    // Its agents' commands already hold all but two places (Postgres stalled: none is written).
    expect(commands.take(MAX_COMMANDS_IN_FLIGHT - 2)).toBe(true);
    const { handOver, finishWrite, replies } = serving(commands);
    for (const part of [1, 2, 3]) handOver(part);
    await turn();
    expect(finishWrite).toHaveLength(2);
    expect(replies).toEqual([SHED_REPLY]);
    // One written and answered: room for one more.
    finishWrite[0]!({ cursor: 'e1-5', duplicate: false });
    await turn();
    expect(replies.at(-1)).toEqual({ ok: true, cursor: 'e1-5', duplicate: false, writer: 'me' });
    handOver(4);
    await turn();
    expect(finishWrite).toHaveLength(3);
    expect(commands.take(1)).toBe(false);
  });
});
