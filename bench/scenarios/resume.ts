import WebSocket from 'ws';
import { connect } from '@nats-io/transport-node';
import type { Settings } from '../../libs/config/src/index.js';
import { BenchServer, now, round } from '../support/bench-server.js';
import { createConversations, persisted } from '../support/helpers.js';

const MISSED = 5_000;

interface Frame {
  type: string;
  cursor?: string;
  prev?: string;
  event?: { type: string; delta?: string };
}

interface Missed {
  id: string;
  cursor: string;
  expected: string;
}

/**
 * A device misses 5,000 append events, then subscribes again from its cursor: on the instance
 * that saw the events go by, and on one started after them (which reads them from JetStream).
 */
export async function resume(settings: Settings, run: string) {
  const server = await BenchServer.start(settings);
  const nc = await connect({ servers: settings.nats.url });
  try {
    const miss = async (id: string): Promise<Missed> => {
      await createConversations(server.base, [id]);
      const subject = `${settings.log.prefix}.agent.${id}`;
      const command = async (body: object): Promise<{ ok: boolean; cursor?: string }> => (await nc.request(subject, JSON.stringify(body), { timeout: 5_000 })).json();
      const started = await command({ type: 'message.start', messageId: 'answer', agentId: 'bench' });
      const cursor = started.cursor!;
      // The device was following, then lost its connection.
      const before = new WebSocket(`${server.base.replace(/^http/, 'ws')}/v1/ws`);
      await new Promise((resolve, reject) => before.once('open', resolve).once('error', reject));
      before.send(JSON.stringify({ type: 'subscribe', conversationId: id, after: cursor }));
      await new Promise((resolve) => before.once('message', resolve));
      before.terminate();

      // Each append is acknowledged before the next, so each is one event in the log.
      let expected = '';
      for (let part = 1; part <= MISSED; part++) {
        const delta = ` e${part}`;
        expected += delta;
        const reply = await command({ type: 'message.append', messageId: 'answer', part, delta });
        if (!reply.ok) throw new Error(`append ${part} refused: ${JSON.stringify(reply)}`);
      }
      // The device was away while the events were written, so Postgres has long caught up when it
      // returns: the figure is the resume, not the resume racing the writes of the burst above.
      await persisted(settings);
      return { id, cursor, expected };
    };
    // The first resume on a fresh process also pays for compiling its code paths; the second is the figure.
    const warmUp = await miss(`resume-${run}-warm-up`);
    await resumeFrom(server.base, warmUp);
    const missed = await miss(`resume-${run}`);
    const readsBefore = await server.metric('seqline_recent_log_reads_total');
    const here = await resumeFrom(server.base, missed);
    const readsHere = (await server.metric('seqline_recent_log_reads_total')) - readsBefore;
    const cold = await BenchServer.start(settings);
    try {
      await resumeFrom(cold.base, warmUp);
      const fromLog = await resumeFrom(cold.base, missed);
      return {
        missedEvents: MISSED,
        receivedEvents: here.events,
        exact: here.exact && fromLog.exact,
        subscribedMs: here.subscribedMs,
        allReceivedMs: here.ms,
        /** Catch-ups served from the recent log: 1 here, and none on the instance started after the events. */
        recentLogReads: readsHere,
        fromLogRecentLogReads: await cold.metric('seqline_recent_log_reads_total'),
        fromLogSubscribedMs: fromLog.subscribedMs,
        fromLogAllReceivedMs: fromLog.ms,
      };
    } finally {
      await cold.stop();
    }
  } finally {
    await nc.close();
    await server.stop();
  }
}

/** Subscribes from the cursor the device kept, and times it until the last missed event arrived. */
async function resumeFrom(base: string, { id, cursor, expected }: Missed) {
  const socket = new WebSocket(`${base.replace(/^http/, 'ws')}/v1/ws`);
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  let text = '';
  let at = cursor;
  let events = 0;
  let violations = 0;
  let subscribed = 0;
  const begin = now();
  let timer: NodeJS.Timeout | undefined;
  const received = new Promise<void>((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`resume of ${id}: ${events} of ${MISSED} events after 30 s`)), 30_000);
    socket.on('message', (data) => {
      const frame = JSON.parse(String(data)) as Frame;
      if (frame.type === 'subscribed') subscribed = now() - begin;
      if (frame.type !== 'event') return;
      if (frame.prev !== at) violations++;
      at = frame.cursor!;
      text += frame.event!.delta ?? '';
      if (++events === MISSED) resolve();
    });
  });
  socket.send(JSON.stringify({ type: 'subscribe', conversationId: id, after: cursor }));
  try {
    await received;
  } finally {
    clearTimeout(timer);
    socket.close();
  }
  const ms = now() - begin;
  return { events, exact: text === expected && violations === 0, subscribedMs: round(subscribed), ms: round(ms) };
}
