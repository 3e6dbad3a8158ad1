import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type ConsumerMessages, type JetStreamClient, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import { CONSUMER_CREATE_TIMEOUT_MS } from './election-retry.js';
import type { LogStream } from './log-stream.js';
import { waitAtMost } from './wait-at-most.js';

/** One committed log event as the tail hands it over: raw bytes, decoded only by whoever needs them. */
export interface TailMessage {
  subject: string;
  seq: number;
  data: Uint8Array;
  time: Date;
}

export interface LogTailOptions {
  /** Called for every committed event of every conversation, in stream order, exactly once. */
  onMessage: (message: TailMessage) => void;
  onRestart?: (error: unknown, resumeAfter: number) => void;
  /** A consumer is set up and delivering from after `after` (at start and after each restart). */
  onConsuming?: (consumer: string, after: number) => void;
  /** Why a consumer is being given up (heartbeats missed, gone, silent), or events read from the stream leader instead, for the log. */
  onStatus?: (status: { type: string; events?: number }) => void;
}

/** What one consumer has delivered, and what its heartbeats say it has sent. */
interface ConsumerProgress {
  delivered: number;
  claimed: number;
}

const nanos = (ms: number): number => ms * 1_000_000;
const HEARTBEAT_MS = 1_000;
/** How long `stop` waits for the consume to close before it waits for the loop itself. */
const STOP_CLOSE_WAIT_MS = 2_000;
/** No message and no heartbeat for this long: the consumer is gone, whatever the client says. */
const SILENCE_MS = 3 * HEARTBEAT_MS;
/**
 * No message for this long: ask the stream leader whether the log holds an event the feed
 * should have delivered. A consumer on a cluster node whose replica stopped following the
 * leader keeps sending heartbeats but nothing else; only the leader can tell.
 */
const STALL_CHECK_MS = 2 * HEARTBEAT_MS;
/**
 * Most events read from the stream leader, one get each, before a new consumer is set up. The
 * consumer is the fast way; the gets only make sure a consumer that cannot be created or keeps
 * landing on a replica that is behind does not hold the feed up.
 */
const LEADER_CATCH_UP_EVENTS = 2_000;
const LEADER_CATCH_UP_MS = 1_000;

/**
 * The instance's one live feed of the whole log: a single ephemeral consumer over every
 * conversation's log subject, read in stream order. It replaces a consumer per device: whatever
 * the number of subscribers, an instance costs JetStream one consumer here.
 *
 * The consumer has no acknowledgements, so a delivery lost on a reconnect would be lost for
 * good; every delivery is therefore checked against the consumer's own sequence, and on a jump,
 * missed heartbeats or a vanished consumer a new one starts right after the last event handed
 * over. The stream sequence is global, so that restart has no gap and no repeat.
 */
export class LogTail {
  private readonly js: JetStreamClient;
  private stopped = false;
  private messages?: ConsumerMessages;
  private running?: Promise<void>;
  private lastSeq = 0;
  private consumerName?: string;
  private jsm?: Promise<JetStreamManager>;
  /** When the consumer last delivered a message or a heartbeat. */
  private heardAt = 0;
  /** When the consumer last delivered an event not handed over before. */
  private deliveredAt = 0;
  private checkingStall = false;
  /** Counts recreations of the log: a consume loop set up before the last one hands over nothing more. */
  private epochs = 0;
  private readonly stopFollowingEpoch: () => void;

  constructor(
    private readonly stream: LogStream,
    private readonly options: LogTailOptions,
  ) {
    this.js = jetstream(stream.nc);
    // A recreated log starts its sequences again: follow it from its first event.
    this.stopFollowingEpoch = stream.onEpochChange(() => {
      this.epochs++;
      this.lastSeq = 0;
      void this.messages?.close();
    });
  }

  /** Starts after the stream's current last event: subscribers catch up on older events from the log itself. */
  async start(): Promise<void> {
    this.lastSeq = (await this.stream.bounds()).last;
    this.running = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stopFollowingEpoch();
    // Bounded all the same: a close waits on the connection, which may be away.
    if (this.messages) await waitAtMost(this.messages.close(), STOP_CLOSE_WAIT_MS);
    await this.running;
    if (this.consumerName) await this.stream.jsm.consumers.delete(this.stream.name, this.consumerName).catch(() => false);
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.consumeOnce();
      } catch (error) {
        if (this.stopped) return;
        this.options.onRestart?.(error, this.lastSeq);
        await sleep(250);
        // The consumer may have gone with the stream; a new epoch resets `lastSeq` through the listener.
        await this.stream.refresh().catch(() => false);
        await this.catchUpFromLeader();
      }
    }
  }

  /**
   * Hands over what the stream leader holds after the last event handed over, by direct gets,
   * before a new consumer is tried. However often consumers fail (created on a node that does not
   * answer, or on a replica that stopped following), the feed moves on as long as the stream has
   * a leader, which every write needs anyway. Stops at the first get that fails.
   */
  private async catchUpFromLeader(): Promise<void> {
    const epochs = this.epochs;
    const deadline = Date.now() + LEADER_CATCH_UP_MS;
    let read = 0;
    while (read < LEADER_CATCH_UP_EVENTS && Date.now() < deadline && !this.stopped) {
      const after = this.lastSeq;
      const next = await this.stream.jsm.streams.getMessage(this.stream.name, nextLogEvent(this.stream, after)).catch(() => null);
      if (!next || this.epochs !== epochs || this.lastSeq !== after || this.stopped) break;
      this.lastSeq = next.seq;
      read++;
      this.options.onMessage({ subject: next.subject, seq: next.seq, data: next.data, time: next.time });
    }
    if (read > 0) this.options.onStatus?.({ type: 'read_from_leader', events: read });
  }

  private async consumeOnce(): Promise<void> {
    const epochs = this.epochs;
    // Not waited for: on a damaged cluster the old consumer's node may not answer at all.
    if (this.consumerName) void this.stream.jsm.consumers.delete(this.stream.name, this.consumerName).catch(() => false);
    const jsm = await (this.jsm ??= jetstreamManager(this.stream.nc, { timeout: CONSUMER_CREATE_TIMEOUT_MS, checkAPI: false }));
    const info = await jsm.consumers.add(this.stream.name, {
      filter_subject: this.stream.subjects.allLogs,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: this.lastSeq + 1,
      ack_policy: AckPolicy.None,
      // An instance that dies leaves nothing behind for long.
      inactive_threshold: nanos(30_000),
      mem_storage: true,
      num_replicas: 1,
    });
    this.consumerName = info.name;
    this.options.onConsuming?.(info.name, this.lastSeq);
    const consumer = this.js.consumers.getConsumerFromInfo(info);
    const messages = await consumer.consume({ max_messages: 1024, idle_heartbeat: HEARTBEAT_MS });
    if (this.stopped) return void messages.close();
    // Recreated while this consumer was set up: it may follow the old log's positions. Set up again.
    if (this.epochs !== epochs) {
      void messages.close();
      throw new Error('the log was recreated while the live feed consumer was set up');
    }
    // Only a consume that is read: closing one never read settles only once it is (`stop` would wait for ever).
    this.messages = messages;
    const progress: ConsumerProgress = { delivered: 0, claimed: 0 };
    void this.watch(messages, progress);
    // The client reports missed heartbeats only while it has pulls out; a consumer whose node
    // went away mid-pull can fall silent without a word. Silence is judged here as well.
    this.heardAt = this.deliveredAt = Date.now();
    let claimUnmetTicks = 0;
    const watchdog = setInterval(() => {
      // Deliveries a heartbeat says were sent and that still have not come a tick later were lost
      // on the way (a reconnect): without acknowledgements they are never sent again.
      claimUnmetTicks = progress.claimed > progress.delivered ? claimUnmetTicks + 1 : 0;
      if (claimUnmetTicks >= 2) {
        this.options.onStatus?.({ type: 'deliveries_lost' });
        void messages.close();
      } else if (Date.now() - this.heardAt > SILENCE_MS) {
        this.options.onStatus?.({ type: 'silent' });
        void messages.close();
      } else if (this.stream.options.replicas > 1 && Date.now() - this.deliveredAt > STALL_CHECK_MS) {
        // Only a replica can fall behind its leader; on one node the check would cost a request a second for nothing.
        void this.checkStall(messages);
      }
    }, HEARTBEAT_MS);
    try {
      await this.deliver(messages, epochs, progress);
    } finally {
      clearInterval(watchdog);
    }
    if (!this.stopped) throw new Error('live feed consumer ended');
  }

  /** `epochs`: the count of recreations when the consumer was set up. */
  private async deliver(messages: ConsumerMessages, epochs: number, progress: ConsumerProgress): Promise<void> {
    for await (const msg of messages) {
      // The rest of a batch the old log delivered before it was recreated: its sequences are not the new log's.
      if (this.epochs !== epochs) break;
      if (msg.info.deliverySequence !== progress.delivered + 1) {
        // A delivery went missing (a reconnect on a consumer without acks): start again after the last one handed over.
        void messages.close();
        throw new Error(`live feed delivery ${msg.info.deliverySequence} follows ${progress.delivered}`);
      }
      progress.delivered = msg.info.deliverySequence;
      this.heardAt = Date.now();
      // Only a new event counts as progress: a consumer repeating old positions is as stuck as a silent one.
      if (msg.seq <= this.lastSeq) continue;
      this.deliveredAt = this.heardAt;
      this.lastSeq = msg.seq;
      this.options.onMessage(toTailMessage(msg));
    }
  }

  /**
   * Gives up the consumer when the leader holds a log event after the last one delivered that
   * is older than the stall window: the consumer's replica is behind, however alive it looks.
   */
  private async checkStall(messages: ConsumerMessages): Promise<void> {
    if (this.checkingStall) return;
    this.checkingStall = true;
    const after = this.lastSeq;
    try {
      const next = await this.stream.jsm.streams.getMessage(this.stream.name, nextLogEvent(this.stream, after)).catch(() => null);
      if (!next || this.lastSeq !== after || this.stopped) return;
      if (Date.now() - next.time.getTime() < STALL_CHECK_MS) return;
      this.options.onStatus?.({ type: 'stalled' });
      void messages.close();
    } finally {
      this.checkingStall = false;
    }
  }

  /** Ends a consume loop whose consumer vanished or went silent, so `run` sets up a new one. */
  private async watch(messages: ConsumerMessages, progress: ConsumerProgress): Promise<void> {
    for await (const status of messages.status()) {
      switch (status.type) {
        case 'heartbeat':
          this.heardAt = Date.now();
          progress.claimed = Math.max(progress.claimed, status.lastConsumerSequence);
          break;
        case 'consumer_not_found':
        case 'consumer_deleted':
        case 'stream_not_found':
          this.options.onStatus?.(status);
          void messages.close();
          return;
        case 'heartbeats_missed':
          this.options.onStatus?.(status);
          if (status.count >= 2) {
            void messages.close();
            return;
          }
          break;
        default:
          break;
      }
    }
  }
}

/** The first log event after `after`, of any conversation, as the stream leader answers STREAM.MSG.GET. */
function nextLogEvent(stream: LogStream, after: number): { seq: number } {
  // STREAM.MSG.GET takes `next_by_subj` since NATS 2.9; the client's type only lists it for direct gets.
  return { seq: after + 1, next_by_subj: stream.subjects.allLogs } as unknown as { seq: number };
}

function toTailMessage(msg: JsMsg): TailMessage {
  return { subject: msg.subject, seq: msg.seq, data: msg.data, time: new Date(Math.floor(msg.info.timestampNanos / 1_000_000)) };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
