import { readFileSync } from 'node:fs';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { ErrorCode, HTTP_STATUS, type AgentReply } from '@seqline/protocol';
import { createConversation, useSeqline } from '@seqline/testing';
import WebSocket from 'ws';

const PROTOCOL = readFileSync('docs/protocol.md', 'utf8');

/** The rows of the first markdown table after `heading`, as cells without their backticks. */
function table(heading: string): string[][] {
  const start = PROTOCOL.indexOf(`\n${heading}\n`);
  if (start < 0) throw new Error(`docs/protocol.md has no "${heading}"`);
  const lines = PROTOCOL.slice(start).split('\n');
  const first = lines.findIndex((line) => line.startsWith('|'));
  const rows: string[][] = [];
  for (const line of lines.slice(first + 2)) {
    if (!line.startsWith('|')) break;
    rows.push(
      line
        .slice(1, -1)
        .split(/(?<!\\)\|/)
        .map((cell) => cell.trim().replace(/^`(.*)`$/, '$1').replaceAll('\\|', '|')),
    );
  }
  return rows;
}

describe('docs/protocol.md errors', () => {
  const seqline = useSeqline();
  let nc: NatsConnection;
  const agent = async (conversationId: string, payload: string): Promise<AgentReply> =>
    (await nc.request(`${seqline.settings.log.prefix}.agent.${conversationId}`, payload, { timeout: 5_000 })).json<AgentReply>();
  const wsUrl = () => `${seqline.server.url.replace(/^http/, 'ws')}/v1/ws`;

  beforeAll(async () => {
    nc = await connect({ servers: seqline.settings.nats.url });
    // The fixture the examples describe.
    await createConversation(seqline.server.url, 'c1');
    const fixture = [
      { type: 'message.start', messageId: 'a1', agentId: 'w', producerId: 'p1' },
      { type: 'message.append', messageId: 'a1', part: 1, delta: 'Hello', epoch: 1 },
      { type: 'message.start', messageId: 'a1', agentId: 'w', producerId: 'p2' },
      { type: 'message.start', messageId: 'a2', agentId: 'w' },
    ];
    for (const command of fixture) expect(await agent('c1', JSON.stringify(command))).toMatchObject({ ok: true, duplicate: false });
    const device = await openSocket(wsUrl());
    expect(await exchange(device, '{"type":"cancel","ref":"x","conversationId":"c1","messageId":"a2"}')).toMatchObject({ type: 'ack' });
    device.close();
  });
  afterAll(async () => nc.close());

  it('lists every error code once, with the HTTP status the service answers it with', () => {
    const rows = table('## Errors');
    expect(rows.map(([code]) => code).sort()).toEqual(Object.values(ErrorCode).sort());
    for (const [code, status] of rows) expect({ code, status: Number(status) }).toEqual({ code, status: HTTP_STATUS[code as ErrorCode] });
  });

  const examples = table('### Error examples');

  it('has examples for every transport', () => {
    expect(new Set(examples.map(([transport]) => transport))).toEqual(new Set(['nats', 'ws', 'http']));
  });

  for (const [transport, to, sends, code, message] of examples) it(`${transport} ${to} ${sends} → ${code}`, async () => {
    switch (transport) {
      case 'nats': {
        const reply = await agent(to!, sends!);
        expect(reply.ok ? 'ok' : { code: reply.error.code, message: reply.error.message }).toEqual({ code, message });
        break;
      }
      case 'ws': {
        const socket = await openSocket(wsUrl());
        try {
          expect(await exchange(socket, sends!)).toMatchObject({ type: 'error', code, message });
        } finally {
          socket.close();
        }
        break;
      }
      case 'http': {
        const [method, path] = to!.split(' ');
        const response = await fetch(`${seqline.server.url}${path}`, { method, headers: { 'content-type': 'application/json' }, body: sends || undefined });
        const body = (await response.json()) as { code: string; message: string };
        expect({ status: response.status, ...body }).toEqual({ status: HTTP_STATUS[code as ErrorCode], code, message });
        break;
      }
      default:
        throw new Error(`unknown transport ${transport}`);
    }
  });
});

function openSocket(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url);
    socket.once('open', () => resolve(socket)).once('error', reject);
  });
}

/** Sends one frame and resolves with the first frame the server answers with. */
function exchange(socket: WebSocket, frame: string): Promise<{ type: string; code?: string }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer to ${frame}`)), 5_000);
    socket.once('message', (data) => {
      clearTimeout(timer);
      resolve(JSON.parse(String(data)) as { type: string; code?: string });
    });
    socket.send(frame);
  });
}
