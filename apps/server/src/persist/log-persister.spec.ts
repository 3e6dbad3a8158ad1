import { jest } from '@jest/globals';
import { loadEnv, settingsFrom } from '@seqline/config';
import type { MessageRepository, Watermark } from '@seqline/persistence';
import type { ConversationLog, Lease, LogStream } from '@seqline/streams';
import { pino } from 'pino';
import type { MetricsService } from '../metrics/metrics.service.js';
import { LogPersister } from './log-persister.service.js';

const OLD_EPOCH = 'a';
const NEW_EPOCH = 'b';
const at = '2026-11-25T10:00:00.000Z';

/** A log event of conversation `c` as the persister's consumer delivers it. */
function delivered(seq: number, prev: number, messageId: string) {
  const event = { type: 'message.created', messageId, author: { role: 'user', id: 'u' }, status: 'complete', text: messageId, at };
  return {
    subject: 'log.c',
    seq,
    data: new TextEncoder().encode(JSON.stringify({ prev, event })),
    info: { deliveryCount: 1 },
    ack: jest.fn(),
    term: jest.fn(),
    nak: jest.fn(),
  };
}

/** Counts nothing: the persister's figures are not what these cases check. */
const metrics = new Proxy({}, { get: () => ({ inc: () => undefined, set: () => undefined, startTimer: () => () => undefined }) }) as MetricsService;

describe('LogPersister after the log was recreated', () => {
  it('writes events another persister made current while it looked (a lease hand-over) instead of counting them seen', async () => {
    // Postgres counts `c` at 5000 of the old log when this persister looks; by the time it would
    // archive, the persister it takes over from has archived `c` and applied the new log's event 1.
    const readings: Map<string, Watermark>[] = [new Map([['c', { seq: 5000, epoch: OLD_EPOCH }]]), new Map([['c', { seq: 1, epoch: NEW_EPOCH }]])];
    const written: { moves: Map<string, { from: number; to: number }>; ids: string[] }[] = [];
    const repository = {
      watermarks: jest.fn(async () => readings.length > 1 ? readings.shift()! : readings[0]!),
      archiveOtherEpochs: jest.fn(async () => []),
      loadHeads: jest.fn(async () => new Map()),
      write: jest.fn(async (changes: { state: { id: string } }[], moves: Map<string, { from: number; to: number }>) => void written.push({ moves: new Map(moves), ids: changes.map((change) => change.state.id) })),
    } as unknown as MessageRepository;
    const stream = { epoch: NEW_EPOCH, subjects: { conversationOf: (subject: string) => subject.slice(subject.lastIndexOf('.') + 1) } } as unknown as LogStream;
    const persister = new LogPersister(stream, {} as ConversationLog, repository, metrics, { held: true } as Lease, settingsFrom(loadEnv({})), pino({ level: 'silent' }));
    const events = [delivered(2, 1, 'm2'), delivered(3, 2, 'm3')];
    Object.assign(persister, { buffer: events, bufferEpoch: NEW_EPOCH });

    await persister.flush();

    expect(written).toEqual([{ moves: new Map([['c', { from: 1, to: 3 }]]), ids: ['m2', 'm3'] }]);
    for (const event of events) {
      expect(event.ack).toHaveBeenCalledTimes(1);
      expect(event.nak).not.toHaveBeenCalled();
    }
  });
});
