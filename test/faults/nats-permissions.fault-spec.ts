import { resolve } from 'node:path';
import { jetstream } from '@nats-io/jetstream';
import { connect, PermissionViolationError } from '@nats-io/transport-node';
import { SeqlineAgent } from '@seqline/agent';
import { WRITE_PARTITIONS } from '@seqline/protocol';
import { createConversation, createTestSettings, dropTestResources, eventually, http, NatsProcess, ServerProcess, WsDevice } from '@seqline/testing';

/** deploy/nats.conf, as docker-compose runs it: agents may send commands and read prompts, never write the log. */
describe('NATS permissions from deploy/nats.conf', () => {
  it('lets an agent answer through the service and refuses its direct writes to the log', async () => {
    const env = { SEQLINE_NATS_PASSWORD: 'service-pass', AGENT_NATS_PASSWORD: 'agent-pass' };
    const nats = await NatsProcess.start({ file: resolve('deploy/nats.conf'), env });
    const settings = createTestSettings({ NATS_URL: nats.url, SEQLINE_PREFIX: 'seqline', NATS_USER: 'seqline', NATS_PASSWORD: 'service-pass' });
    const server = await ServerProcess.start(settings, { NATS_USER: 'seqline', NATS_PASSWORD: 'service-pass' });
    try {
      await createConversation(server.url, 'perm');
      const agent = await SeqlineAgent.connect({ servers: nats.url, agentId: 'restricted', user: 'agent', password: 'agent-pass', requestTimeoutMs: 1_000 });
      const prompts: string[] = [];
      await agent.onPrompt(async (prompt) => {
        prompts.push(prompt.text);
        const answer = agent.startMessage(prompt.conversationId, { messageId: `${prompt.messageId}-answer` });
        answer.append('allowed answer');
        await answer.complete();
      });
      const device = new WsDevice(server.url, 'perm');
      await device.connect();
      device.send({ type: 'post', conversationId: 'perm', messageId: 'q', text: 'hello agent' });
      await device.until(() => device.messages.get('q-answer')?.status === 'complete', 20_000);
      expect(device.text('q-answer')).toBe('allowed answer');
      expect(prompts).toEqual(['hello agent']);

      // The same agent credentials cannot write the log or the prompts directly.
      const raw = await connect({ servers: nats.url, user: 'agent', pass: 'agent-pass' });
      // nats-server answers each refused publish with a permissions violation: collect them, so
      // the test sees every forged write refused rather than merely not seen yet.
      const denied = new Set<string>();
      void (async () => {
        for await (const status of raw.status()) {
          if (status.type === 'error' && status.error instanceof PermissionViolationError && status.error.operation === 'publish') denied.add(status.error.subject);
        }
      })();
      await expect(jetstream(raw).publish('seqline.log.perm', JSON.stringify({ prev: 0, event: { type: 'message.created' } }), { timeout: 2_000 })).rejects.toThrow();
      raw.publish('seqline.prompt.perm', '{}');
      // Nor hand the service a write as if another instance did (a user's message, here).
      const forged = JSON.stringify({ type: 'message.post', messageId: 'forged', author: { role: 'user', id: 'mallory' }, text: 'forged' });
      const forwards = Array.from({ length: WRITE_PARTITIONS }, (_, partition) => `seqline.forward.${partition}.perm`);
      for (const subject of forwards) raw.publish(subject, forged);
      const refused = ['seqline.log.perm', 'seqline.prompt.perm', ...forwards];
      await eventually(() => refused.every((subject) => denied.has(subject)), 10_000, 'every forged publish refused');
      await raw.close().catch(() => undefined);
      const events = await http<{ items: { event: { type: string; messageId: string } }[] }>(server.url, 'GET', '/v1/conversations/perm/events');
      expect(events.body.items.map((item) => `${item.event.type}:${item.event.messageId}`)).toEqual([
        'message.created:q',
        'message.created:q-answer',
        'message.appended:q-answer',
        'message.completed:q-answer',
      ]);
      await device.close();
      await agent.close();
      await eventually(async () => (await http<{ items: unknown[] }>(server.url, 'GET', '/v1/conversations/perm/messages')).body.items.length === 2);
    } finally {
      await server.crash();
      await dropTestResources(settings);
      await nats.destroy();
    }
  });
});
