import type { Msg } from '@nats-io/transport-node';
import type { AgentReply } from '@seqline/protocol';
import { pino } from 'pino';
import { sendReply, startReplyRefusal } from './reply-sender.js';

const decoder = new TextDecoder();

describe('sendReply', () => {
  const send = (reply: AgentReply, maxPayload: number): unknown => {
    let sent: unknown;
    sendReply({ subject: 's', reply: '_INBOX.1', respond: (data: Uint8Array) => (sent = JSON.parse(decoder.decode(data))) } as unknown as Msg, reply, maxPayload, pino({ level: 'silent' }));
    return sent;
  };

  it('leaves the writer hint out of a start reply that fits only without it, as the take-over check measured it', () => {
    const answer = { status: 'streaming' as const, parts: 3, text: 'x'.repeat(900), epoch: 2 };
    const reply: AgentReply = { ok: true, cursor: 'e-9', duplicate: false, answer, writer: 'w'.repeat(200) };
    const bare = JSON.stringify({ ok: true, cursor: 'e-9', duplicate: false, answer }).length;
    // The check passed, so the claim was written: the reply must then go out.
    expect(startReplyRefusal('e-9', answer, bare + 10)).toBeUndefined();
    expect(send(reply, bare + 10)).toEqual({ ok: true, cursor: 'e-9', duplicate: false, answer });
    // With room for it, the hint stays.
    expect(send(reply, bare + 1_000)).toEqual(reply);
  });
});
