import { DiscardPolicy, jetstreamManager, RetentionPolicy, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import { epochOf, subjects, type Subjects } from '@seqline/protocol';
import type { NatsConnection } from '@nats-io/transport-node';
import { retryTransient } from './election-retry.js';

export interface LogStreamOptions {
  prefix: string;
  stream: string;
  retentionMs: number;
  maxBytes: number;
  duplicateWindowMs: number;
  /** JetStream replicas of the stream (and of the service's buckets): 3 on a cluster. */
  replicas: number;
}

const nanos = (ms: number): number => ms * 1_000_000;

/**
 * The JetStream stream behind every conversation: `<prefix>.log.<conversation>` holds each
 * conversation's events, `<prefix>.prompt.<conversation>` the user messages handed to agents.
 */
export type EpochListener = (epoch: string, previous: string) => void;

export class LogStream {
  readonly subjects: Subjects;
  private epochValue = '';
  private readonly listeners = new Set<EpochListener>();
  private watcher?: NodeJS.Timeout;
  private refreshing?: Promise<boolean>;

  private constructor(
    readonly nc: NatsConnection,
    readonly jsm: JetStreamManager,
    readonly options: LogStreamOptions,
  ) {
    this.subjects = subjects(options.prefix);
  }

  static async open(nc: NatsConnection, options: LogStreamOptions): Promise<LogStream> {
    // No API check here: the first request is retried through an election, the check would not be.
    const log = new LogStream(nc, await jetstreamManager(nc, { checkAPI: false }), options);
    await log.ensure();
    return log;
  }

  /** The stream as it is, without creating or changing it (for operator tools); throws if it does not exist. */
  static async attach(nc: NatsConnection, options: LogStreamOptions): Promise<LogStream> {
    const log = new LogStream(nc, await jetstreamManager(nc), options);
    const info = await log.jsm.streams.info(options.stream);
    log.epochValue = epochOf(new Date(info.created));
    return log;
  }

  get name(): string {
    return this.options.stream;
  }

  /** Changes only when the stream is deleted and created again, so cursors from the old log are recognised. */
  get epoch(): string {
    return this.epochValue;
  }

  /**
   * Called when the epoch changes at run time (the stream was deleted and created again): every
   * sequence, cursor and consumer of the old log means nothing in the new one.
   */
  onEpochChange(listener: EpochListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Reads the stream's epoch again, creating the stream if it is gone; true if it changed.
   * Concurrent calls share one round trip.
   */
  refresh(): Promise<boolean> {
    this.refreshing ??= this.readEpoch().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  /**
   * Whether the log is still of `epoch` once its epoch is read again: false when it was recreated
   * meanwhile (the new epoch is then told to the listeners, as by `refresh`).
   */
  async confirms(epoch: string): Promise<boolean> {
    return !(await this.refresh()) && this.epoch === epoch;
  }

  /** Refreshes the epoch every `intervalMs`, so a recreated stream is noticed even by an idle instance. */
  watch(intervalMs: number, onError: (error: unknown) => void): void {
    clearInterval(this.watcher);
    this.watcher = setInterval(() => this.refresh().catch(onError), intervalMs);
    this.watcher.unref();
  }

  unwatch(): void {
    clearInterval(this.watcher);
  }

  private async readEpoch(): Promise<boolean> {
    const previous = this.epochValue;
    const info = await this.jsm.streams.info(this.options.stream).catch((error: unknown) => {
      if (isStreamNotFound(error)) return null;
      throw error;
    });
    const epoch = info ? epochOf(new Date(info.created)) : await this.createOrUpdate();
    if (epoch === previous) return false;
    // Set and told in one tick: nothing may read the new epoch while its listeners (cached write
    // states, live feeds) still hold what they read from the old log.
    this.epochValue = epoch;
    for (const listener of this.listeners) listener(epoch, previous);
    return true;
  }

  /** Creates the stream, or brings an existing one's limits to the configured values. */
  async ensure(): Promise<void> {
    this.epochValue = await this.createOrUpdate();
  }

  /** The epoch of the stream created, or of the existing one brought to the configured limits. */
  private async createOrUpdate(): Promise<string> {
    const config = {
      name: this.options.stream,
      subjects: [this.subjects.allLogs, this.subjects.allPrompts, this.subjects.allMeta],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
      max_age: nanos(this.options.retentionMs),
      max_bytes: this.options.maxBytes,
      duplicate_window: nanos(Math.min(this.options.duplicateWindowMs, this.options.retentionMs)),
      num_replicas: this.options.replicas,
    };
    // Only a stream that is not there is created: one whose leader is being elected is waited for.
    const existing = await retryTransient(() => this.jsm.streams.info(this.options.stream)).catch((error: unknown) => {
      if (isStreamNotFound(error)) return null;
      throw error;
    });
    const info = await retryTransient(() => (existing ? this.jsm.streams.update(this.options.stream, config) : this.jsm.streams.add(config)));
    return epochOf(new Date(info.created));
  }

  /** The oldest and newest sequences the stream holds; cursors before the oldest may have lost events to retention. */
  async bounds(): Promise<{ first: number; last: number }> {
    const info = await retryTransient(() => this.jsm.streams.info(this.options.stream));
    return { first: info.state.first_seq, last: info.state.last_seq };
  }
}

function isStreamNotFound(error: unknown): boolean {
  const api = (error as { api_error?: { err_code?: number } }).api_error;
  return api?.err_code === 10059 || /stream not found/i.test(String((error as Error).message));
}
