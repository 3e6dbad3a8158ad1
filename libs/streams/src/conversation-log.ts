import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  type ConsumerInfo,
  type JetStreamClient,
  type JetStreamManager,
  type MsgRequest,
} from '@nats-io/jetstream';
import { headers } from '@nats-io/transport-node';
import type { CancelNotice, LogEvent, LogRecord } from '@seqline/protocol';
import { CONSUMER_CREATE_TIMEOUT_MS, isTransient, LeaderUnavailableError, retryTransient } from './election-retry.js';
import { NatsRequester } from './nats-requester.js';
import { decodeDeliveredEntry, decodeEntry, UndecodableEventError, type LogEntry } from './log-entry.js';
import type { LogStream } from './log-stream.js';

const encoder = new TextEncoder();
const nanos = (ms: number): number => ms * 1_000_000;
/** JetStream's error code for a failed `expect.lastSubjectSequence`. */
const WRONG_LAST_SEQUENCE = 10071;
/**
 * Events asked for per pull of a read. What a pull brings waits in memory while its reader (a
 * device catching up over a slow network) drains: many readers at once, far behind, multiply it.
 */
const READ_PULL = 1_000;
/** How long a reader's fetch waits for the server's expiry (5 s) to end it: past that, the connection is away. */
const FETCH_EXPIRES_MS = 5_000;
/**
 * A fetch that has delivered nothing for this long (up to twice this after its last event) is given up. The client keeps no timer of its own
 * on a fetch, and a connection that drops mid-fetch leaves it waiting until NATS is back (a read,
 * and a shutdown waiting on it, for as long as NATS is away).
 */
const FETCH_STALL_MS = FETCH_EXPIRES_MS + 2_000;
/** After a reader could not be created, reads go by direct gets for this long. */
const READERS_AVOIDED_MS = 30_000;

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
const GET_TIMEOUT_MS = 5_000;
const NO_MESSAGE = 10037;

/** A conversation's own record in the log (`<prefix>.meta.<id>`). */
export interface ConversationMeta {
  id: string;
  title: string | null;
  createdAt: string;
}

/** How far a read has got: the last event handed over (or skipped), and how many. */
interface ReadProgress {
  position: number;
  count: number;
}

export type UndecodableHandler = (seq: number, error: UndecodableEventError) => void;

/**
 * How a read decodes events: by default as delivery does (`decodeDeliveredEntry`, their shape
 * only); `decodeEntry` for a reader whose result goes to Postgres, which must step over exactly
 * what the persister steps over.
 */
export type EntryDecoder = (conversationId: string, seq: number, data: Uint8Array, time: Date) => LogEntry;

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

  private readersJsm?: Promise<JetStreamManager>;
  private readersAvoidedUntil = 0;

  /**
   * `readerInactiveMs`: how long JetStream keeps a reader consumer nobody pulls from (a caller
   * pausing between batches) before it deletes it.
   */
  constructor(
    private readonly stream: LogStream,
    private readonly readerInactiveMs = 30_000,
  ) {
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
    const data = encoder.encode(JSON.stringify(record));
    // Repeating the same write is safe through an election: the message id and the expected
    // sequence make a second copy impossible.
    return retryTransient(async () => {
      const reply = await this.requester.request(this.stream.subjects.log(conversationId), data, { timeoutMs: PUBLISH_TIMEOUT_MS, headers: h });
      const ack = JSON.parse(decoder.decode(reply.data)) as PubAck;
      if (ack.error) {
        if (ack.error.err_code === WRONG_LAST_SEQUENCE) throw new WrongLastSequenceError(ack.error.description);
        if (ack.error.code === 503) throw new LeaderUnavailableError(ack.error.description);
        throw new LogWriteError(ack.error.description, ack.error.err_code);
      }
      return { seq: ack.seq!, duplicate: ack.duplicate === true };
    });
  }

  /** Publishes a user message for agents; `msgId` de-duplicates retries. */
  async publishPrompt(conversationId: string, payload: unknown, msgId: string): Promise<void> {
    const data = encoder.encode(JSON.stringify(payload));
    await retryTransient(() => this.js.publish(this.stream.subjects.prompt(conversationId), data, { msgID: msgId }));
  }

  /**
   * Whether the log holds a prompt for `messageId` after `afterSeq` (looking at no more than
   * `limit` of the conversation's prompts); `undefined` when it looked at `limit` without finding one.
   */
  async hasPrompt(conversationId: string, messageId: string, afterSeq: number, limit: number): Promise<boolean | undefined> {
    let seq = afterSeq + 1;
    for (let i = 0; i < limit; i++) {
      const request = { seq, next_by_subj: this.stream.subjects.prompt(conversationId) } as unknown as MsgRequest;
      const stored = await this.getMessage(request);
      if (!stored) return false;
      try {
        if ((JSON.parse(decoder.decode(stored.data)) as { messageId?: unknown }).messageId === messageId) return true;
      } catch {
        // Not a prompt this version can read: not the one looked for.
      }
      seq = stored.seq + 1;
    }
    return undefined;
  }

  /**
   * Tells agents that a streaming answer was ended for them (a device cancelled it, or the service
   * ended it as abandoned). Core NATS: a notice may be missed, the refusal of the next command is not.
   */
  publishCancelNotice(notice: CancelNotice): void {
    this.stream.nc.publish(this.stream.subjects.cancel(notice.conversationId), encoder.encode(JSON.stringify(notice)));
  }

  /** The conversation's last event in the log as stored, undecoded; null when it has none. */
  async lastStored(conversationId: string): Promise<LogMessage | null> {
    return this.getMessage({ last_by_subj: this.stream.subjects.log(conversationId) });
  }

  /** The sequence of the conversation's last event in the log, 0 when it has none (read without decoding it). */
  async lastSeq(conversationId: string): Promise<number> {
    return (await this.lastStored(conversationId))?.seq ?? 0;
  }

  /** The sequence of the conversation's first event at or after `seq`, without decoding it; null when none. */
  async nextSeq(conversationId: string, seq: number): Promise<number | null> {
    const stored = await this.getMessage(this.nextRequest(conversationId, seq));
    return stored?.seq ?? null;
  }

  /** Records a conversation's own row in the log, so it can be rebuilt from the log alone. */
  async publishMeta(meta: ConversationMeta): Promise<void> {
    const data = encoder.encode(JSON.stringify(meta));
    await retryTransient(() => this.js.publish(this.stream.subjects.meta(meta.id), data, { msgID: `meta.${meta.id}` }));
  }

  /** The conversation's record, or null when the log does not hold it (never written, or expired). */
  async meta(conversationId: string): Promise<ConversationMeta | null> {
    const stored = await this.getMessage({ last_by_subj: this.stream.subjects.meta(conversationId) });
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
      const info = await retryTransient(() => this.stream.jsm.streams.info(this.stream.name, { subjects_filter: filter }));
      for (const subject of Object.keys(info.state.subjects ?? {})) ids.add(this.stream.subjects.conversationOf(subject));
    }
    return [...ids].sort();
  }

  /**
   * The conversation's first event at or after `seq`, by direct get (one round trip, no consumer),
   * decoded in full unless `decode` says otherwise (see `EntryDecoder`).
   */
  async next(conversationId: string, seq: number, decode: EntryDecoder = decodeEntry): Promise<LogEntry | null> {
    const stored = await this.getMessage(this.nextRequest(conversationId, seq));
    return stored ? decode(conversationId, stored.seq, stored.data, stored.time) : null;
  }

  /** When the event at `seq` was stored, or null if the stream no longer holds it. */
  async timeAt(seq: number): Promise<Date | null> {
    const stored = await this.getMessage({ seq });
    return stored?.time ?? null;
  }

  /** The subject of the event at `seq`, or null if the stream no longer holds it. */
  async subjectAt(seq: number): Promise<string | null> {
    const stored = await this.getMessage({ seq });
    return stored?.subject ?? null;
  }

  /**
   * Up to `limit` events after `after`, oldest first, for catch-up and REST reads: one short-lived
   * consumer, asked once for everything it has pending (in pulls of at most `READ_PULL`).
   */
  async read(conversationId: string, after: number, limit: number, onUndecodable?: UndecodableHandler, decode: EntryDecoder = decodeDeliveredEntry): Promise<LogEntry[]> {
    const entries: LogEntry[] = [];
    for await (const batch of this.readBatches(conversationId, after, limit, limit, onUndecodable, decode)) entries.push(...batch);
    return entries;
  }

  /**
   * The same events as `read`, handed over in batches of up to `batchSize` as they arrive, so a
   * caller can send the first ones while the rest are still on their way. Stopping early (break,
   * throw) removes the consumer too. An event that cannot be decoded ends the read with
   * `UndecodableEventError`, unless `onUndecodable` is given: then it is reported and skipped.
   *
   * A reader consumer is the fast way. When JetStream cannot create or serve one (a cluster
   * node is gone, a leader is being elected), the read goes on from where it stopped by direct
   * gets from the stream leader: slower, but it needs nothing but a stream leader.
   */
  async *readBatches(conversationId: string, after: number, limit: number, batchSize: number, onUndecodable?: UndecodableHandler, decode: EntryDecoder = decodeDeliveredEntry): AsyncGenerator<LogEntry[]> {
    const progress: ReadProgress = { position: after, count: 0 };
    while (Date.now() >= this.readersAvoidedUntil) {
      const handedOver = progress.count;
      try {
        yield* this.readByConsumer(conversationId, progress, limit, batchSize, onUndecodable, decode);
        // A consumer on a follower that is still catching up (a node just restarted) sees the
        // log only as far as that node has it. The stream leader says whether there is more.
        if (progress.count >= limit || (await this.nextSeq(conversationId, progress.position + 1)) === null) return;
        break;
      } catch (error) {
        // A reader that handed events over and then failed most likely went while its caller
        // took its time with them (a slow device catching up: past the reader's inactive
        // threshold, JetStream deletes it). A new one goes on from where it stopped; each try
        // must hand something over, so this ends.
        if (progress.count > handedOver && !(error instanceof UndecodableEventError)) continue;
        if (!isTransient(error)) throw error;
        this.readersAvoidedUntil = Date.now() + READERS_AVOIDED_MS;
      }
    }
    yield* this.readByGets(conversationId, progress, limit, batchSize, onUndecodable, decode);
  }

  /** `progress` moves with each batch handed over, so a read that fails can go on from there. */
  private async *readByConsumer(conversationId: string, progress: ReadProgress, limit: number, batchSize: number, onUndecodable: UndecodableHandler | undefined, decode: EntryDecoder): AsyncGenerator<LogEntry[]> {
    const readers = await (this.readersJsm ??= jetstreamManager(this.stream.nc, { timeout: CONSUMER_CREATE_TIMEOUT_MS, checkAPI: false }));
    const created = await this.addReader(readers, conversationId, progress.position);
    try {
      // Fetch exactly what is pending, so the read never waits out a fetch expiry for messages that will not come.
      let pending = created.num_pending;
      let count = progress.count;
      let last = progress.position;
      // From the info the create returned: no second round trip before the first fetch.
      const consumer = this.js.consumers.getConsumerFromInfo(created);
      let batch: LogEntry[] = [];
      /** Deliveries of this reader so far: one sent into a connection that dropped is never sent again (no acknowledgements). */
      let delivered = 0;
      const handOver = () => {
        const full = batch;
        batch = [];
        progress.position = last;
        progress.count = count;
        return full;
      };
      while (count < limit && pending > 0) {
        let got = 0;
        let stalled = false;
        let stall: ReturnType<typeof setTimeout> | undefined;
        try {
          const fetched = await consumer.fetch({ max_messages: Math.min(limit - count, pending, READ_PULL), expires: FETCH_EXPIRES_MS });
          // One timer a fetch, not one per event. It gives up only when no event came since it last
          // looked and the reader's caller is not holding a batch: closed then, the fetch would drop
          // events it holds unread (the reader has no acknowledgements).
          let holding = false;
          let gotAtCheck = 0;
          const check = (): void => {
            if (holding || got !== gotAtCheck) {
              gotAtCheck = got;
              stall = setTimeout(check, FETCH_STALL_MS);
              return;
            }
            stalled = true;
            void fetched.close();
          };
          stall = setTimeout(check, FETCH_STALL_MS);
          for await (const msg of fetched) {
            // A reconnect mid-fetch pulls again, and what was sent into the old connection is gone:
            // the read goes on from the last batch handed over instead of past a gap.
            if (msg.info.deliverySequence !== delivered + 1) throw new LeaderUnavailableError(`the reader of ${conversationId} lost deliveries ${delivered + 1}-${msg.info.deliverySequence - 1}`);
            delivered = msg.info.deliverySequence;
            pending = msg.info.pending;
            try {
              batch.push(decode(conversationId, msg.seq, msg.data, new Date(Math.floor(msg.info.timestampNanos / 1_000_000))));
            } catch (error) {
              if (!onUndecodable || !(error instanceof UndecodableEventError)) throw error;
              onUndecodable(msg.seq, error);
            }
            got++;
            count++;
            last = msg.seq;
            if (batch.length === batchSize) {
              holding = true;
              yield handOver();
              holding = false;
            }
          }
        } catch (error) {
          throw readerFailure(conversationId, error);
        } finally {
          clearTimeout(stall);
        }
        // Events are pending, yet none came (or the next did not): the consumer's node, or the connection, is gone.
        if (got === 0 || stalled) throw new LeaderUnavailableError(`the reader of ${conversationId} stopped delivering`);
      }
      if (batch.length > 0) yield handOver();
    } finally {
      // Not awaited: the reader has its answer; the consumer would expire by itself anyway.
      readers.consumers.delete(this.stream.name, created.name).catch(() => false);
    }
  }

  /** One direct get per event (`next_by_subj`), each retried through an election. */
  private async *readByGets(conversationId: string, progress: ReadProgress, limit: number, batchSize: number, onUndecodable: UndecodableHandler | undefined, decode: EntryDecoder): AsyncGenerator<LogEntry[]> {
    let batch: LogEntry[] = [];
    while (progress.count < limit) {
      const stored = await this.getMessage(this.nextRequest(conversationId, progress.position + 1));
      if (!stored) break;
      try {
        batch.push(decode(conversationId, stored.seq, stored.data, stored.time));
      } catch (error) {
        if (!onUndecodable || !(error instanceof UndecodableEventError)) throw error;
        onUndecodable(stored.seq, error);
      }
      progress.position = stored.seq;
      progress.count++;
      if (batch.length === batchSize) {
        yield batch;
        batch = [];
      }
    }
    if (batch.length > 0) yield batch;
  }

  private addReader(readers: JetStreamManager, conversationId: string, after: number): Promise<ConsumerInfo> {
    return readers.consumers.add(this.stream.name, {
      filter_subject: this.stream.subjects.log(conversationId),
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: after + 1,
      ack_policy: AckPolicy.None,
      inactive_threshold: nanos(this.readerInactiveMs),
      mem_storage: true,
      num_replicas: 1,
    });
  }

  /**
   * STREAM.MSG.GET through the instance's requester. The client's `getMessage` builds two errors
   * with stack traces for every "no message" answer, and a snapshot of a quiet conversation is
   * exactly that answer: with thousands of devices opening conversations it showed in profiles.
   */
  private getMessage(request: MsgRequest): Promise<LogMessage | null> {
    const data = encoder.encode(JSON.stringify(request));
    return retryTransient(async () => {
      const reply = await this.requester.request(`$JS.API.STREAM.MSG.GET.${this.stream.name}`, data, { timeoutMs: GET_TIMEOUT_MS });
      return parseMessageGet(reply.data);
    });
  }

  private nextRequest(conversationId: string, seq: number): MsgRequest {
    // STREAM.MSG.GET takes `next_by_subj` since NATS 2.9; the client's type only lists it for direct gets.
    return { seq, next_by_subj: this.stream.subjects.log(conversationId) } as unknown as MsgRequest;
  }
}

/**
 * A reader's own failure (its node went: heartbeats missed, the consumer deleted or not found) as
 * one the read goes on from by direct gets, like a reader that stopped delivering; a decode error
 * is not the reader's.
 */
function readerFailure(conversationId: string, error: unknown): unknown {
  if (error instanceof UndecodableEventError || isTransient(error)) return error;
  return new LeaderUnavailableError(`the reader of ${conversationId} failed: ${(error as Error).message}`);
}

/** A message read back from the stream by STREAM.MSG.GET. */
export interface LogMessage {
  subject: string;
  seq: number;
  data: Uint8Array;
  time: Date;
}

interface MessageGetReply {
  message?: { subject: string; seq: number; data?: string; time: string };
  error?: { code: number; err_code?: number; description?: string };
}

/** The reply to STREAM.MSG.GET: the message, null when there is none, or the error JetStream gave. */
export function parseMessageGet(reply: Uint8Array): LogMessage | null {
  const parsed = JSON.parse(decoder.decode(reply)) as MessageGetReply;
  if (parsed.error) {
    if (parsed.error.err_code === NO_MESSAGE) return null;
    if (parsed.error.code === 503) throw new LeaderUnavailableError(parsed.error.description ?? 'JetStream is unavailable');
    throw new LogReadError(parsed.error.description ?? `JetStream error ${parsed.error.code}`, parsed.error.err_code);
  }
  const message = parsed.message;
  if (!message) throw new LogReadError('JetStream answered a message get with neither a message nor an error');
  const data = message.data ? Buffer.from(message.data, 'base64') : new Uint8Array(0);
  return { subject: message.subject, seq: message.seq, data, time: new Date(message.time) };
}

/** JetStream refused a read for a reason other than an election. */
export class LogReadError extends Error {
  constructor(
    message: string,
    readonly errCode?: number,
  ) {
    super(message);
    this.name = 'LogReadError';
  }
}
