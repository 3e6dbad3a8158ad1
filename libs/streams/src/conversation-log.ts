import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  type ConsumerInfo,
  type JetStreamClient,
  type JsMsg,
  type MsgRequest,
} from '@nats-io/jetstream';
import { headers } from '@nats-io/transport-node';
import type { LogEvent, LogRecord } from '@seqline/protocol';
import { NatsRequester } from './nats-requester.js';
import { decodeDeliveredEntry, decodeEntry, UndecodableEventError, type LogEntry } from './log-entry.js';
import type { LogStream } from './log-stream.js';

const encoder = new TextEncoder();
const nanos = (ms: number): number => ms * 1_000_000;
/** JetStream's error code for a failed `expect.lastSubjectSequence`. */
const WRONG_LAST_SEQUENCE = 10071;
const READ_PULL = 10_000;

export class WrongLastSequenceError extends Error {}

/** JetStream refused a write for another reason than a stale `expect` (see its `errCode`). */
export class LogWriteError extends Error {
  constructor(
    message: string,
    readonly errCode: number,
  ) {
    super(message);
  }
}

interface PubAck {
  seq?: number;
  duplicate?: boolean;
  error?: { code: number; err_code: number; description: string };
}

const decoder = new TextDecoder();
const PUBLISH_TIMEOUT_MS = 5_000;

/** A conversation's own record in the log (`<prefix>.meta.<id>`). */
export interface ConversationMeta {
  id: string;
  title: string | null;
  createdAt: string;
}

export type UndecodableHandler = (seq: number, error: UndecodableEventError) => void;

export interface AppendResult {
  seq: number;
  duplicate: boolean;
}

/**
 * One conversation's ordered event log on JetStream. Writes name their predecessor and are
 * rejected if another writer got there first, so the chain of `prev` links is exact.
 */
export class ConversationLog {
  private readonly js: JetStreamClient;
  private readonly requester: NatsRequester;

  constructor(private readonly stream: LogStream) {
    this.js = jetstream(stream.nc);
    this.requester = new NatsRequester(stream.nc);
  }

  /**
   * Appends `event` after `prev` (the conversation's current last sequence, 0 when empty).
   * JetStream refuses the write unless the subject's last stored sequence is `expectedLast`,
   * which is `prev` except when retention has emptied the subject (then 0).
   * `msgId` makes a retried write a no-op within the duplicate window.
   */
  async append(conversationId: string, event: LogEvent, prev: number, msgId: string, expectedLast = prev): Promise<AppendResult> {
    const record: LogRecord = { prev, event };
    // A plain request rather than `js.publish`: this is the hot path, and the PubAck is all it needs.
    const h = headers();
    h.set('Nats-Msg-Id', msgId);
    h.set('Nats-Expected-Last-Subject-Sequence', String(expectedLast));
    const reply = await this.requester.request(this.stream.subjects.log(conversationId), encoder.encode(JSON.stringify(record)), { timeoutMs: PUBLISH_TIMEOUT_MS, headers: h });
    const ack = JSON.parse(decoder.decode(reply.data)) as PubAck;
    if (ack.error) {
      if (ack.error.err_code === WRONG_LAST_SEQUENCE) throw new WrongLastSequenceError(ack.error.description);
      throw new LogWriteError(ack.error.description, ack.error.err_code);
    }
    return { seq: ack.seq!, duplicate: ack.duplicate === true };
  }

  /** Publishes a user message for agents; `msgId` de-duplicates retries. */
  async publishPrompt(conversationId: string, payload: unknown, msgId: string): Promise<void> {
    await this.js.publish(this.stream.subjects.prompt(conversationId), encoder.encode(JSON.stringify(payload)), { msgID: msgId });
  }

  /** The sequence of the conversation's last event in the log, 0 when it has none (read without decoding it). */
  async lastSeq(conversationId: string): Promise<number> {
    const stored = await this.stream.jsm.streams.getMessage(this.stream.name, { last_by_subj: this.stream.subjects.log(conversationId) });
    return stored?.seq ?? 0;
  }

  /** The sequence of the conversation's first event at or after `seq`, without decoding it; null when none. */
  async nextSeq(conversationId: string, seq: number): Promise<number | null> {
    const request = { seq, next_by_subj: this.stream.subjects.log(conversationId) } as unknown as MsgRequest;
    const stored = await this.stream.jsm.streams.getMessage(this.stream.name, request);
    return stored?.seq ?? null;
  }

  /** Records a conversation's own row in the log, so it can be rebuilt from the log alone. */
  async publishMeta(meta: ConversationMeta): Promise<void> {
    await this.js.publish(this.stream.subjects.meta(meta.id), encoder.encode(JSON.stringify(meta)), { msgID: `meta.${meta.id}` });
  }

  /** The conversation's record, or null when the log does not hold it (never written, or expired). */
  async meta(conversationId: string): Promise<ConversationMeta | null> {
    const stored = await this.stream.jsm.streams.getMessage(this.stream.name, { last_by_subj: this.stream.subjects.meta(conversationId) });
    if (!stored) return null;
    try {
      const meta = JSON.parse(decoder.decode(stored.data)) as ConversationMeta;
      return typeof meta.id === 'string' && typeof meta.createdAt === 'string' ? { id: meta.id, title: typeof meta.title === 'string' ? meta.title : null, createdAt: meta.createdAt } : null;
    } catch {
      return null;
    }
  }

  /** Every conversation the log holds events or a record of, sorted. */
  async conversationIds(): Promise<string[]> {
    const ids = new Set<string>();
    for (const filter of [this.stream.subjects.allLogs, this.stream.subjects.allMeta]) {
      const info = await this.stream.jsm.streams.info(this.stream.name, { subjects_filter: filter });
      for (const subject of Object.keys(info.state.subjects ?? {})) ids.add(this.stream.subjects.conversationOf(subject));
    }
    return [...ids].sort();
  }

  /** The conversation's first event at or after `seq`, by direct get (one round trip, no consumer). */
  async next(conversationId: string, seq: number): Promise<LogEntry | null> {
    // STREAM.MSG.GET takes `next_by_subj` since NATS 2.9; the client's type only lists it for direct gets.
    const request = { seq, next_by_subj: this.stream.subjects.log(conversationId) } as unknown as MsgRequest;
    const stored = await this.stream.jsm.streams.getMessage(this.stream.name, request);
    return stored ? decodeEntry(conversationId, stored.seq, stored.data, stored.time) : null;
  }

  /** The subject of the event at `seq`, or null if the stream no longer holds it. */
  async subjectAt(seq: number): Promise<string | null> {
    const stored = await this.stream.jsm.streams.getMessage(this.stream.name, { seq });
    return stored?.subject ?? null;
  }

  /**
   * Up to `limit` events after `after`, oldest first, for catch-up and REST reads: one short-lived
   * consumer, asked once for everything it has pending (in pulls of at most `READ_PULL`).
   */
  async read(conversationId: string, after: number, limit: number, onUndecodable?: UndecodableHandler): Promise<LogEntry[]> {
    const entries: LogEntry[] = [];
    for await (const batch of this.readBatches(conversationId, after, limit, limit, onUndecodable)) entries.push(...batch);
    return entries;
  }

  /**
   * The same events as `read`, handed over in batches of up to `batchSize` as they arrive, so a
   * caller can send the first ones while the rest are still on their way. Stopping early (break,
   * throw) removes the consumer too. An event that cannot be decoded ends the read with
   * `UndecodableEventError`, unless `onUndecodable` is given: then it is reported and skipped.
   */
  async *readBatches(conversationId: string, after: number, limit: number, batchSize: number, onUndecodable?: UndecodableHandler): AsyncGenerator<LogEntry[]> {
    const created = await this.addReader(conversationId, after);
    try {
      // Fetch exactly what is pending, so the read never waits out a fetch expiry for messages that will not come.
      let pending = created.num_pending;
      let count = 0;
      // From the info the create returned: no second round trip before the first fetch.
      const consumer = this.js.consumers.getConsumerFromInfo(created);
      let batch: LogEntry[] = [];
      while (count < limit && pending > 0) {
        const fetched = await consumer.fetch({ max_messages: Math.min(limit - count, pending, READ_PULL), expires: 5_000 });
        let got = 0;
        for await (const msg of fetched) {
          pending = msg.info.pending;
          try {
            batch.push(this.decode(conversationId, msg));
          } catch (error) {
            if (!onUndecodable || !(error instanceof UndecodableEventError)) throw error;
            onUndecodable(msg.seq, error);
          }
          got++;
          if (batch.length === batchSize) {
            yield batch;
            batch = [];
          }
        }
        if (got === 0) break;
        count += got;
      }
      if (batch.length > 0) yield batch;
    } finally {
      // Not awaited: the reader has its answer; the consumer would expire by itself anyway.
      this.stream.jsm.consumers.delete(this.stream.name, created.name).catch(() => false);
    }
  }

  private addReader(conversationId: string, after: number): Promise<ConsumerInfo> {
    return this.stream.jsm.consumers.add(this.stream.name, {
      filter_subject: this.stream.subjects.log(conversationId),
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: after + 1,
      ack_policy: AckPolicy.None,
      inactive_threshold: nanos(30_000),
      mem_storage: true,
      num_replicas: 1,
    });
  }

  private decode(conversationId: string, msg: JsMsg): LogEntry {
    return decodeDeliveredEntry(conversationId, msg.seq, msg.data, new Date(Math.floor(msg.info.timestampNanos / 1_000_000)));
  }
}
