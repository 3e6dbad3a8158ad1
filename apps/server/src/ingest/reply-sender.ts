import type { Msg } from '@nats-io/transport-node';
import { ErrorCode, SeqlineError, type AgentReply } from '@seqline/protocol';
import type { Logger } from 'pino';

/** nats-server's default `max_payload`, for a connection that has not told its own yet. */
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

const encoder = new TextEncoder();

/**
 * Sends a command's reply. The reply to a `message.start` carries the answer so far, which for a
 * long answer in multi-byte text (its text blocks repeat the text) can be larger than a NATS
 * message may be. Such a reply goes without the blocks (`blocksOmitted`), which leaves the
 * producer what it needs to go on: text, parts and epoch. Only a reply too large even then (text
 * that escapes to several bytes a character) becomes a `MESSAGE_TOO_LARGE` refusal, instead of a
 * failed send that would leave the producer waiting for its timeout.
 */
export function sendReply(msg: Msg, reply: AgentReply, maxPayload: number | undefined, logger: Logger): void {
  if (!msg.reply) return;
  let data = encoder.encode(JSON.stringify(reply));
  const limit = maxPayload ?? DEFAULT_MAX_PAYLOAD;
  if (data.length > limit && reply.ok && reply.answer?.blocks) {
    const { blocks: _omitted, ...answer } = reply.answer;
    data = encoder.encode(JSON.stringify({ ...reply, answer: { ...answer, blocksOmitted: true } } satisfies AgentReply));
  }
  if (data.length > limit) {
    const refusal = new SeqlineError(
      ErrorCode.MessageTooLarge,
      `the answer so far is ${data.length} bytes as a reply, more than this NATS server's max_payload (${limit} bytes) allows; read it over REST`,
    );
    logger.warn({ subject: msg.subject, bytes: data.length, maxPayload: limit }, 'a reply was too large for NATS; refused instead');
    data = encoder.encode(JSON.stringify({ ok: false, error: refusal.toBody() } satisfies AgentReply));
  }
  try {
    msg.respond(data);
  } catch (error) {
    // The connection is closing: the requester times out and retries elsewhere.
    logger.warn({ err: error, subject: msg.subject }, 'a reply could not be sent');
  }
}
