import WebSocket from 'ws';
import { connect } from '@nats-io/transport-node';
import type { Settings } from '../../libs/config/src/index.js';
import { BenchServer, now, round } from '../support/bench-server.js';
import { createConversations } from '../support/helpers.js';

const MISSED = 5_000;

interface Frame {
  type: string;
  cursor?: string;
  prev?: string;
  event?: { type: string; delta?: string };
}

/** A device misses 5,000 append events, then subscribes again from its cursor. */
export async function resume(settings: Settings, run: string) {
  const server = await BenchServer.start(settings);
  const nc = await connect({ servers: settings.nats.url });
  try {
    const missAndResume = async (id: string) => {
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

      const socket = new WebSocket(`${server.base.replace(/^http/, 'ws')}/v1/ws`);
      await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
      let text = '';
      let at = cursor;
      let events = 0;
      let violations = 0;
      let resubscribed = 0;
      const begin = now();
      const received = new Promise<void>((resolve) => {
        socket.on('message', (data) => {
          const frame = JSON.parse(String(data)) as Frame;
          if (frame.type === 'subscribed') resubscribed = now() - begin;
          if (frame.type !== 'event') return;
          if (frame.prev !== at) violations++;
          at = frame.cursor!;
          text += frame.event!.delta ?? '';
          if (++events === MISSED) resolve();
        });
      });
      socket.send(JSON.stringify({ type: 'subscribe', conversationId: id, after: cursor }));
      await received;
      const ms = now() - begin;
      socket.close();
      return { missedEvents: MISSED, receivedEvents: events, exact: text === expected && violations === 0, subscribedMs: round(resubscribed), allReceivedMs: round(ms) };
    };
    // The first resume on a fresh process also pays for compiling its code paths; the second is the figure.
    await missAndResume(`resume-${run}-warm-up`);
    return await missAndResume(`resume-${run}`);
  } finally {
    await nc.close();
    await server.stop();
  }
}
