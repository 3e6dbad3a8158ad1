import { jest } from '@jest/globals';
import { loadEnv, settingsFrom } from '@seqline/config';
import type { MessageRepository } from '@seqline/persistence';
import { ErrorCode, SeqlineError } from '@seqline/protocol';
import type { ConversationLog, Lease, LogStream } from '@seqline/streams';
import { pino } from 'pino';
import type { ConversationWriter } from '../ingest/conversation-writer.service.js';
import { AnswerStillActive } from '../ingest/command-decider.js';
import { AbandonedAnswerReaper } from './abandoned-answer-reaper.service.js';
import type { LogPersister } from './log-persister.service.js';

/**
 * Postgres names `stuck` streaming rows the log refuses to end, then `ending` ones it ends, then
 * `ended` ones the log has ended already, oldest first; `active` ones, still streaming in the log
 * (their rows lag behind), come first of all.
 */
function build(stuck: number, ending: number, endedInLog = 0, active = 0, lastEventAt = () => new Date().toISOString()) {
  const rows = [
    ...Array.from({ length: active }, (_, i) => ({ conversationId: `live-${i}`, id: 'a' })),
    ...Array.from({ length: stuck }, (_, i) => ({ conversationId: `stuck-${i}`, id: 'a' })),
    ...Array.from({ length: ending }, (_, i) => ({ conversationId: `gone-${i}`, id: 'a' })),
    ...Array.from({ length: endedInLog }, (_, i) => ({ conversationId: `done-${i}`, id: 'a' })),
  ];
  const ended = new Set<string>();
  const messages = {
    streamingSilentSince: jest.fn(async (_since: Date, limit: number) => rows.filter((row) => !ended.has(row.conversationId)).slice(0, limit)),
  } as unknown as MessageRepository;
  const writer = {
    write: jest.fn(async (conversationId: string) => {
      if (conversationId.startsWith('live')) throw new AnswerStillActive('a', lastEventAt());
      if (conversationId.startsWith('stuck')) throw new SeqlineError(ErrorCode.Unavailable, 'the conversation cannot take the write now');
      if (conversationId.startsWith('done')) throw new SeqlineError(ErrorCode.MessageFinished, 'message a is already complete', 'complete');
      ended.add(conversationId);
      return { cursor: 'e-1', duplicate: false };
    }),
  } as unknown as ConversationWriter;
  const rechecked: string[] = [];
  const persister = { recheck: (conversationId: string) => rechecked.push(conversationId) } as unknown as LogPersister;
  const reaper = new AbandonedAnswerReaper(messages, writer, { publishCancelNotice: jest.fn() } as unknown as ConversationLog, { held: true } as Lease, { epoch: 'e' } as LogStream, persister, settingsFrom(loadEnv({})), pino({ level: 'silent' }));
  return { reaper, ended, writer, rechecked };
}

describe('AbandonedAnswerReaper', () => {
  it('passes over answers the log refuses to end, so a full page of them does not keep the others waiting', async () => {
    const { reaper, ended, writer } = build(100, 30);
    await reaper.sweep();
    expect(ended.size).toBe(0);
    await reaper.sweep();
    expect(ended.size).toBe(30);
    // Each refused answer was tried once, not on every sweep.
    expect((writer.write as jest.Mock).mock.calls.filter(([id]) => String(id).startsWith('stuck'))).toHaveLength(100);
  });

  it('has the persister read the end of an answer the log has ended and Postgres shows streaming, and only those', async () => {
    const { reaper, rechecked } = build(2, 1, 2);
    await reaper.sweep();
    expect(rechecked).toEqual(['done-0', 'done-1']);
  });

  it('passes over answers still streaming in the log whose rows lag behind, so a page of them does not keep an abandoned one waiting', async () => {
    const { reaper, ended, writer } = build(0, 1, 0, 100);
    await reaper.sweep();
    expect(ended.size).toBe(0);
    await reaper.sweep();
    expect([...ended]).toEqual(['gone-0']);
    expect((writer.write as jest.Mock).mock.calls.filter(([id]) => String(id).startsWith('live'))).toHaveLength(100);
  });

  describe('as time passes', () => {
    beforeEach(() => jest.useFakeTimers({ now: new Date('2026-12-01T10:00:00.000Z') }));
    afterEach(() => jest.useRealTimers());

    it('looks again at an answer that was still active once a lease has passed since its last event, not since the sweep', async () => {
      const lease = settingsFrom(loadEnv({})).agentLeaseMs;
      // Its last event was a second short of a lease ago.
      const { reaper, writer } = build(0, 0, 0, 1, () => new Date(Date.now() - lease + 1_000).toISOString());
      await reaper.sweep();
      jest.setSystemTime(Date.now() + 1_500);
      await reaper.sweep();
      expect((writer.write as jest.Mock).mock.calls).toHaveLength(2);
    });

    it('tries an answer refused as unavailable (Postgres slow for a moment) again within a minute, not ten', async () => {
      const { reaper, writer } = build(1, 0);
      await reaper.sweep();
      jest.setSystemTime(Date.now() + 60_000);
      await reaper.sweep();
      expect((writer.write as jest.Mock).mock.calls).toHaveLength(2);
    });
  });
});
