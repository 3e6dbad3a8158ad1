import { formatCursor } from '@seqline/protocol';
import type { LogEntry } from '@seqline/streams';
import { textFrame } from '../ws/text-frame.js';

/**
 * One log event on its way to devices. It is decoded once per instance and each wire form is
 * serialised once, on first use, so a thousand subscribers get the same bytes.
 */
export class FeedEvent {
  readonly seq: number;
  readonly prev: number;
  private ws?: Buffer;
  private sse?: Buffer;

  constructor(
    readonly entry: LogEntry,
    private readonly epoch: string,
    /** The event's size in the log, for the window's byte bound. */
    private readonly bytes: number,
  ) {
    this.seq = entry.seq;
    this.prev = entry.prev;
  }

  /** The WebSocket `event` frame, framed for the wire: every device's socket gets these bytes. */
  get wsFrame(): Buffer {
    return (this.ws ??= textFrame(`{"type":"event",${this.fields()}}`));
  }

  /** The SSE message: `id` is the cursor, so EventSource resumes with Last-Event-ID by itself. */
  get sseFrame(): Buffer {
    return (this.sse ??= Buffer.from(`id: ${formatCursor({ epoch: this.epoch, seq: this.seq })}\ndata: {${this.fields()}}\n\n`));
  }

  /**
   * The `ConversationEvent` as JSON members, the same text `JSON.stringify(toConversationEvent(entry, epoch))` gives
   * between its braces. The event's own JSON is taken from the log as it is when the entry has it.
   */
  private fields(): string {
    const { entry } = this;
    const event = entry.eventJson ?? JSON.stringify(entry.event);
    return `"conversationId":${JSON.stringify(entry.conversationId)},"cursor":"${formatCursor({ epoch: this.epoch, seq: this.seq })}","prev":"${formatCursor({ epoch: this.epoch, seq: this.prev })}","event":${event}`;
  }

  /** Rough memory this event holds: the decoded event and up to two serialised forms. */
  get size(): number {
    return 256 + this.bytes * 4;
  }
}
