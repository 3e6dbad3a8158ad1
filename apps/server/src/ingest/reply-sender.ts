import type { Msg } from '@nats-io/transport-node';
import { ErrorCode, NATS_DEFAULT_MAX_PAYLOAD, SeqlineError, type AgentReply, type AnswerState, type BatchReply } from '@seqline/protocol';
import type { Logger } from 'pino';

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
  const limit = maxPayload ?? NATS_DEFAULT_MAX_PAYLOAD;
  // `writer` is only a hint and `blocks` repeat the text: both go before a reply is refused (`startReplyRefusal` measures without them).
  if (data.length > limit && reply.ok) data = encoder.encode(JSON.stringify(withoutBlocks(withoutWriter(reply))));
  if (data.length > limit) {
    const refusal = replyTooLarge(data.length, limit);
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

/** Sends a batch's replies. They hold no answer state (a batch carries no `message.start`), so they stay small: at most a few hundred bytes a command. */
export function sendBatchReply(msg: Msg, reply: BatchReply, logger: Logger): void {
  if (!msg.reply) return;
  try {
    msg.respond(encoder.encode(JSON.stringify(reply)));
  } catch (error) {
    logger.warn({ err: error, subject: msg.subject }, 'a reply could not be sent');
  }
}

/**
 * The refusal a start reply carrying `answer` would meet in `sendReply`, or undefined when it fits.
 * A take-over asks this before it writes its claim: a claim whose reply cannot be sent would fence
 * the answer's producer while the new one never learns its epoch, leaving the answer to no one.
 */
export function startReplyRefusal(cursor: string, answer: AnswerState, maxPayload: number | undefined): SeqlineError | undefined {
  const limit = maxPayload ?? NATS_DEFAULT_MAX_PAYLOAD;
  // JSON escapes a UTF-16 unit to at most 6 bytes: most answers are plainly far below the limit.
  if (answer.text.length * 6 + cursor.length + 1024 < limit) return undefined;
  const bytes = encoder.encode(JSON.stringify(withoutBlocks({ ok: true, cursor, duplicate: false, answer }))).length;
  return bytes > limit ? replyTooLarge(bytes, limit) : undefined;
}

function withoutWriter(reply: AgentReply & { ok: true }): AgentReply & { ok: true } {
  const { writer: _hint, ...rest } = reply;
  return rest;
}

function withoutBlocks(reply: AgentReply & { ok: true }): AgentReply {
  if (!reply.answer?.blocks) return reply;
  const { blocks: _omitted, ...answer } = reply.answer;
  return { ...reply, answer: { ...answer, blocksOmitted: true } };
}

function replyTooLarge(bytes: number, limit: number): SeqlineError {
  return new SeqlineError(ErrorCode.MessageTooLarge, `the answer so far is ${bytes} bytes as a reply, more than this NATS server's max_payload (${limit} bytes) allows; read it over REST`);
}
