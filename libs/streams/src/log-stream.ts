import { DiscardPolicy, jetstreamManager, RetentionPolicy, StorageType, type JetStreamManager, type StreamConfig, type StreamInfo } from '@nats-io/jetstream';
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
    log.epochValue = epochOfStream(info);
    return log;
  }

  get name(): string {
    return this.options.stream;
  }

  /** The stream's epoch as NATS says it now, creating and changing nothing (operator tools); undefined when the stream is gone. */
  async currentEpoch(): Promise<string | undefined> {
    const info = await this.jsm.streams.info(this.options.stream).catch((error: unknown) => {
      if (isStreamNotFound(error)) return null;
      throw error;
    });
    return info ? epochOfStream(info) : undefined;
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
    // A stream not marked yet (created by an earlier version, or an instance of one updated it during an upgrade) is marked now.
    const epoch = info && markedEpoch(info.config.description) ? epochOfStream(info) : await this.createOrUpdate();
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
    let existing = await this.info();
    existing ??= await retryTransient(() => this.jsm.streams.add(config)).catch(async (error: unknown) => {
      // Another instance created it meanwhile (and may have marked it already): taken as it is.
      const found = isStreamInUse(error) ? await this.info() : null;
      if (!found) throw error;
      return found;
    });
    const marked = markedEpoch(existing.config.description);
    // Never updated for nothing: on nats-server 2.9 an update writes the time the server last
    // started as the stream's creation, which it reports after its next restart (see epochOfStream).
    if (marked && sameConfig(existing.config, { ...config, description: existing.config.description })) return marked;
    // The epoch is written into the stream once, from its creation time as this instance reads it now.
    const description = marked ? existing.config.description : epochMarker(epochOf(new Date(existing.created)));
    const info = await retryTransient(() => this.jsm.streams.update(this.options.stream, { ...config, description }));
    return epochOfStream(info);
  }

  private info(): Promise<StreamInfo | null> {
    return retryTransient(() => this.jsm.streams.info(this.options.stream)).catch((error: unknown) => {
      if (isStreamNotFound(error)) return null;
      throw error;
    });
  }

  /** The oldest and newest sequences the stream holds; cursors before the oldest may have lost events to retention. */
  async bounds(): Promise<{ first: number; last: number }> {
    const info = await retryTransient(() => this.jsm.streams.info(this.options.stream));
    return { first: info.state.first_seq, last: info.state.last_seq };
  }
}

const EPOCH_MARKER = /^seqline log, epoch ([0-9a-z]+)$/;

function epochMarker(epoch: string): string {
  return `seqline log, epoch ${epoch}`;
}

function markedEpoch(description: string | undefined): string | undefined {
  return description ? EPOCH_MARKER.exec(description)?.[1] : undefined;
}

/**
 * The log's epoch: written into the stream's description when it was created, else (a stream of
 * an earlier version, not yet marked) its creation time. Not the creation time alone: after a
 * stream update, nats-server 2.9 reports the time it last started as the creation time once it
 * restarts, which would read as a recreated log (every cursor expired, every row archived).
 */
export function epochOfStream(info: StreamInfo): string {
  return markedEpoch(info.config.description) ?? epochOf(new Date(info.created));
}

/** Whether the stream already has every setting the service manages as `wanted`. */
function sameConfig(current: StreamConfig, wanted: Partial<StreamConfig>): boolean {
  const sameSubjects = (a: string[] = [], b: string[] = []) => a.length === b.length && a.every((subject) => b.includes(subject));
  return (
    sameSubjects(current.subjects, wanted.subjects) &&
    current.retention === wanted.retention &&
    current.storage === wanted.storage &&
    current.discard === wanted.discard &&
    current.max_age === wanted.max_age &&
    current.max_bytes === wanted.max_bytes &&
    current.duplicate_window === wanted.duplicate_window &&
    current.num_replicas === wanted.num_replicas &&
    current.description === wanted.description
  );
}

function isStreamInUse(error: unknown): boolean {
  const api = (error as { api_error?: { err_code?: number } }).api_error;
  return api?.err_code === 10058 || /already in use/i.test(String((error as Error).message));
}

function isStreamNotFound(error: unknown): boolean {
  const api = (error as { api_error?: { err_code?: number } }).api_error;
  return api?.err_code === 10059 || /stream not found/i.test(String((error as Error).message));
}
