import { SeqlineAgent } from '@seqline/agent';
import type { Settings } from '@seqline/config';
import { createConversation, createTestSettings, dropTestResources, eventually, startTestServer, useSeqline, WsDevice, type RunningServer } from '@seqline/testing';
import WebSocket from 'ws';
import { DeviceGateway } from '../apps/server/src/delivery/ws/device.gateway.js';

describe('the server restarted mid-stream', () => {
  let settings: Settings;
  let server: RunningServer | undefined;
  let agent: SeqlineAgent | undefined;

  beforeAll(() => {
    settings = createTestSettings();
  });
  afterAll(async () => {
    await agent?.close();
    await server?.close();
    await dropTestResources(settings);
  });

  it('converges Postgres to one exact row per message and lets devices resume', async () => {
    server = await startTestServer(settings);
    const port = new URL(server.url).port;
    await createConversation(server.url, 'c-restart');
    agent = await SeqlineAgent.connect({ servers: settings.nats.url, agentId: 'writer', prefix: settings.log.prefix, stream: settings.log.stream });
    const device = new WsDevice(server.url, 'c-restart');
    await device.connect();

    const answer = agent.startMessage('c-restart', { messageId: 'long' });
    let expected = '';
    const send = async (from: number, to: number): Promise<void> => {
      for (let i = from; i < to; i++) {
        const token = ` w${i}`;
        expected += token;
        answer.append(token);
        if (i % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
      }
    };
    await send(0, 500);
    await device.until(() => (device.text('long')?.length ?? 0) > 100);

    // Stop the only instance while the agent keeps streaming: its appends wait and retry.
    const stopping = server.close();
    const streaming = send(500, 1_000);
    await stopping;
    await device.until(() => device.closeCode !== undefined);
    expect(device.closeCode).toBe(1001);

    server = await startTestServer({ ...settings, http: { ...settings.http, port: Number(port) } });
    await streaming;
    await answer.complete();
    await device.connect();
    await device.until(() => device.messages.get('long')?.status === 'complete');

    expect(device.violations).toEqual([]);
    expect(device.text('long')).toBe(expected);
    await eventually(async () => {
      const rows = await server!.infra.prisma.message.findMany({ where: { conversationId: 'c-restart' } });
      return rows.length === 1 && rows[0]!.status === 'complete';
    });
    const rows = await server.infra.prisma.message.findMany({ where: { conversationId: 'c-restart' } });
    expect(rows).toHaveLength(1);
    expect(rows[0]!.text).toBe(expected);
    await device.close();
  });
});

describe('an instance draining (SIGTERM)', () => {
  const seqline = useSeqline();

  it('sends a device that connects while it drains on at once (1001), as it did the devices it had', async () => {
    await createConversation(seqline.server.url, 'drain');
    const before = new WsDevice(seqline.server.url, 'drain');
    await before.connect();
    // What the shutdown does first, before the HTTP server stops taking connections.
    await seqline.server.app.get(DeviceGateway).beforeApplicationShutdown();
    await before.until(() => before.closeCode !== undefined);
    expect(before.closeCode).toBe(1001);
    const late = new WebSocket(`${seqline.server.url.replace(/^http/, 'ws')}/v1/ws`);
    const [code, reason] = await new Promise<[number, string]>((resolve) => late.once('close', (c: number, r: Buffer) => resolve([c, String(r)])));
    expect({ code, reason }).toEqual({ code: 1001, reason: 'server shutting down: reconnect and resume' });
  });
});
