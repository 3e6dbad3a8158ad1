import { DiscardPolicy, jetstreamManager, RetentionPolicy, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import { epochOf, subjects, type Subjects } from '@seqline/protocol';
import type { NatsConnection } from '@nats-io/transport-node';

export interface LogStreamOptions {
  prefix: string;
  stream: string;
  retentionMs: number;
  maxBytes: number;
  duplicateWindowMs: number;
}

const nanos = (ms: number): number => ms * 1_000_000;

/**
 * The JetStream stream behind every conversation: `<prefix>.log.<conversation>` holds each
 * conversation's events, `<prefix>.prompt.<conversation>` the user messages handed to agents.
 */
export class LogStream {
  readonly subjects: Subjects;
  private epochValue = '';

  private constructor(
    readonly nc: NatsConnection,
    readonly jsm: JetStreamManager,
    readonly options: LogStreamOptions,
  ) {
    this.subjects = subjects(options.prefix);
  }

  static async open(nc: NatsConnection, options: LogStreamOptions): Promise<LogStream> {
    const log = new LogStream(nc, await jetstreamManager(nc), options);
    await log.ensure();
    return log;
  }

  get name(): string {
    return this.options.stream;
  }

  /** Changes only when the stream is deleted and created again, so cursors from the old log are recognised. */
  get epoch(): string {
    return this.epochValue;
  }

  /** Creates the stream, or brings an existing one's limits to the configured values. */
  async ensure(): Promise<void> {
    const config = {
      name: this.options.stream,
      subjects: [this.subjects.allLogs, this.subjects.allPrompts],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
      max_age: nanos(this.options.retentionMs),
      max_bytes: this.options.maxBytes,
      duplicate_window: nanos(Math.min(this.options.duplicateWindowMs, this.options.retentionMs)),
      num_replicas: 1,
    };
    const existing = await this.jsm.streams.info(this.options.stream).catch(() => null);
    const info = existing ? await this.jsm.streams.update(this.options.stream, config) : await this.jsm.streams.add(config);
    this.epochValue = epochOf(new Date(info.created));
  }

  /** The oldest and newest sequences the stream holds; cursors before the oldest may have lost events to retention. */
  async bounds(): Promise<{ first: number; last: number }> {
    const info = await this.jsm.streams.info(this.options.stream);
    return { first: info.state.first_seq, last: info.state.last_seq };
  }
}
