import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { AgentReply } from '@seqline/protocol';
import { createConversation, eventually, http, seededRandom, testSeed, useSeqline, WsDevice } from '@seqline/testing';

/** What the service must do, written as plainly as possible: one answer, two producers of one agent, a device that may cancel. */
class AnswerModel {
  exists = false;
  status: 'streaming' | 'complete' | 'failed' | 'aborted' = 'streaming';
  parts: string[] = [];
  producer?: string;
  /** Producers the answer was taken over from: none may take it back. */
  former: string[] = [];
  epoch = 1;
  error?: string;

  /** The outcome a command must get: `write`, `duplicate`, or an error code. */
  apply(command: Command): string {
    const fenced = (epoch: number) => epoch !== this.epoch;
    switch (command.type) {
      case 'message.start':
        if (!this.exists) {
          Object.assign(this, { exists: true, producer: command.producerId });
          return 'write';
        }
        if (this.status !== 'streaming' || command.producerId === this.producer) return 'duplicate';
        if (this.former.includes(command.producerId)) return 'FENCED';
        if (this.producer !== undefined) this.former.push(this.producer);
        this.producer = command.producerId;
        this.epoch++;
        return 'write';
      case 'message.append': {
        if (!this.exists) return 'UNKNOWN_MESSAGE';
        if (fenced(command.epoch)) return 'FENCED';
        if (command.part <= this.parts.length) return this.parts[command.part - 1] === command.delta ? 'duplicate' : 'PART_CONFLICT';
        if (this.status !== 'streaming') return 'MESSAGE_FINISHED';
        if (command.part !== this.parts.length + 1) return 'PART_OUT_OF_ORDER';
        this.parts.push(command.delta);
        return 'write';
      }
      case 'message.complete':
        if (!this.exists) return 'UNKNOWN_MESSAGE';
        if (fenced(command.epoch)) return 'FENCED';
        if (this.status === 'complete') return 'duplicate';
        if (this.status !== 'streaming') return 'MESSAGE_FINISHED';
        this.status = 'complete';
        return 'write';
      case 'message.fail':
        if (!this.exists) return 'UNKNOWN_MESSAGE';
        if (fenced(command.epoch)) return 'FENCED';
        if (this.status === 'failed' && this.error === command.error) return 'duplicate';
        if (this.status !== 'streaming') return 'MESSAGE_FINISHED';
        Object.assign(this, { status: 'failed', error: command.error });
        return 'write';
      case 'cancel':
        if (!this.exists) return 'UNKNOWN_MESSAGE';
        if (this.status === 'aborted') return 'duplicate';
        if (this.status !== 'streaming') return 'MESSAGE_FINISHED';
        this.status = 'aborted';
        return 'write';
    }
  }
}

type Command =
  | { type: 'message.start'; messageId: string; agentId: string; producerId: string }
  | { type: 'message.append'; messageId: string; part: number; delta: string; epoch: number }
  | { type: 'message.complete'; messageId: string; epoch: number }
  | { type: 'message.fail'; messageId: string; error: string; epoch: number }
  | { type: 'cancel'; messageId: string };

/**
 * Random sequences of start, append (new, retried, conflicting, out of order), complete, fail
 * and device cancels from two producers, each checked against the model: the reply, the events
 * in the log, what a device shows and the Postgres row. Replay a failure with TEST_SEED.
 */
describe('agent commands against a reference model', () => {
  const seqline = useSeqline();
  const seed = testSeed();
  let nc: NatsConnection;

  beforeAll(async () => {
    nc = await connect({ servers: seqline.settings.nats.url });
  });
  afterAll(async () => nc.close());

  it(`agrees with the model on every reply and ends with the model's text everywhere (seed ${seed})`, async () => {
    const random = seededRandom(seed);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    const rounds = 20;
    for (let round = 0; round < rounds; round++) {
      const conversationId = `model-${round}`;
      await createConversation(seqline.server.url, conversationId);
      const device = new WsDevice(seqline.server.url, conversationId);
      await device.connect();
      const model = new AnswerModel();
      const known = new Map<string, number>(); // the epoch each producer last learned
      let writes = 0;
      for (let step = 0; step < 40; step++) {
        const producer = pick(['p1', 'p2']);
        // A producer uses the epoch it learned; a zombie keeps using its old one.
        const epoch = known.get(producer) ?? 1;
        const nextPart = model.parts.length + 1;
        const part = pick([nextPart, nextPart, nextPart, Math.max(1, nextPart - 1), 1, nextPart + 1]);
        const delta = part < nextPart && random() < 0.5 ? model.parts[part - 1]! : `${producer}:${part} `;
        const command: Command = pick<Command>([
          { type: 'message.start', messageId: 'm', agentId: 'bot', producerId: producer },
          { type: 'message.append', messageId: 'm', part, delta, epoch },
          { type: 'message.append', messageId: 'm', part, delta, epoch },
          { type: 'message.append', messageId: 'm', part, delta, epoch },
          { type: 'message.complete', messageId: 'm', epoch },
          { type: 'message.fail', messageId: 'm', error: pick(['e1', 'e2']), epoch },
          { type: 'cancel', messageId: 'm' },
        ]);
        // Keep most answers alive long enough to be interesting.
        const ends = command.type === 'cancel' || command.type === 'message.complete' || command.type === 'message.fail';
        if (ends && step < 30 && random() < 0.9) continue;
        if (!model.exists && command.type !== 'message.start' && random() < 0.7) continue;
        let expected = model.apply(command);
        if (expected === 'write') writes++;
        let outcome: string;
        if (command.type === 'cancel') {
          // A device's cancel is acknowledged the same whether it ended the answer or repeated an earlier cancel.
          if (expected === 'write' || expected === 'duplicate') expected = 'ack';
          const ref = `cancel-${step}`;
          device.send({ type: 'cancel', ref, conversationId, messageId: 'm' });
          await device.until(() => device.frames.some((frame) => 'ref' in frame && frame.ref === ref));
          const answer = device.frames.find((frame) => 'ref' in frame && frame.ref === ref)!;
          outcome = answer.type === 'error' ? answer.code : answer.type;
        } else {
          const reply = (await nc.request(`${seqline.settings.log.prefix}.agent.${conversationId}`, JSON.stringify(command), { timeout: 5_000 })).json<AgentReply>();
          outcome = reply.ok ? (reply.duplicate ? 'duplicate' : 'write') : reply.error.code;
          if (reply.ok && reply.answer && command.type === 'message.start' && reply.answer.producerId === producer) known.set(producer, reply.answer.epoch);
        }
        expect({ seed, round, step, command, outcome }).toEqual({ seed, round, step, command, outcome: expected });
      }
      const text = model.parts.join('');
      const events = (await http<{ items: unknown[] }>(seqline.server.url, 'GET', `/v1/conversations/${conversationId}/events?limit=500`)).body.items;
      // Every refusal and every duplicate changed nothing: one event per write.
      expect({ seed, round, events: events.length }).toEqual({ seed, round, events: writes });
      if (model.exists) {
        await device.until(() => device.events.length === writes);
        expect({ seed, round, text: device.text('m'), status: device.messages.get('m')?.status }).toEqual({ seed, round, text, status: model.status });
        expect(device.violations).toEqual([]);
        await eventually(async () => {
          const row = await seqline.server.infra.prisma.message.findUnique({ where: { conversationId_id: { conversationId, id: 'm' } } });
          return row?.text === text && row.status === model.status && row.producerEpoch === model.epoch;
        });
      }
      await device.close();
    }
  });
});
