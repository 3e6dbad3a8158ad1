import { DEFAULT_LIMITS, deltaBytesFor, deltaLength, ErrorCode, illFormedAt, isSetWhole, SeqlineError, wellFormed, type AgentCommand, type AgentReply, type AnswerEnd, type AnswerState, type BlockRef, utf8Length } from '@seqline/protocol';
import { leavesAnswerOpen } from './answer-refusal.js';
import { failureText } from './failure-text.js';

/** Also part of this SDK's API; they live in libs/protocol, which the AI SDK helper uses too. */
export { deltaBytesFor, deltaLength };

const DELTA_BYTES = deltaBytesFor(DEFAULT_LIMITS.frameBytes);

export type AcceptedReply = Extract<AgentReply, { ok: true }>;

/** Where an answer's commands go: the service, through NATS (see `CommandSender`). */
export interface CommandChannel {
  /** Resolves with the service's reply once it accepted the command; rejects if it refused it. */
  send(conversationId: string, command: AgentCommand): Promise<AcceptedReply>;
  /** How long to wait after an acknowledgement before the next append (see `AppendPacer`). */
  holdMs?(): number;
}

export interface AnswerStreamOptions {
  conversationId: string;
  messageId: string;
  maxDeltaChars: number;
  /** The most bytes a delta may take once JSON-encoded: the service's frame limit less room for the rest of the command. */
  maxDeltaBytes?: number;
}

/** Text waiting to be sent to one block (or as plain text). */
interface PendingSegment {
  block?: BlockRef;
  text: string;
}

const endsInHighSurrogate = (text: string): boolean => {
  const code = text.charCodeAt(text.length - 1);
  return code >= 0xd800 && code <= 0xdbff;
};

type EndCommand = { type: 'message.complete'; messageId: string; epoch?: number } | { type: 'message.fail'; messageId: string; error: string; epoch?: number };

/**
 * One streamed answer. `append` never blocks. At most one append is in flight per answer:
 * tokens that arrive meanwhile wait, and all of them go out together as the next part once the
 * service has acknowledged the previous one (and, on a saturated service, a hold of up to 50 ms
 * after that: see `AppendPacer`). So a token waits about one round trip, plus that hold, at any
 * load, and the faster tokens come (or the slower the service answers), the fewer events an
 * answer takes. Each command is retried until acknowledged; parts arrive in order.
 *
 * An answer that already exists (a restarted agent, a redelivered prompt) goes on where it
 * stands: `ready` resolves with its state, the next append is part `parts + 1`, and this
 * producer's epoch goes with every command, so the one it took over from is fenced.
 */
export class AnswerStream {
  readonly conversationId: string;
  readonly messageId: string;
  /**
   * Resolves once the service has accepted the start of the answer, with the answer as it
   * stands: empty for a new answer; for one an earlier producer began, its text and parts
   * (continue from `text`); for one already finished, its final status (nothing more is sent).
   * Rejects if the service refused the start.
   */
  readonly ready: Promise<AnswerState>;
  /**
   * How many times the producer gave this answer text: what tells a working handler from a
   * stalled one. A count, not a time, so a token costs no clock read.
   */
  appends = 0;
  private readonly controller = new AbortController();
  private readonly pending: PendingSegment[] = [];
  private part = 0;
  private epoch?: number;
  private finished = false;
  private sending = false;
  /** Ends the pacer's hold now, while one is being waited out. */
  private endHold?: () => void;
  private end?: EndCommand;
  private failure?: Error;
  private endedAsValue?: AnswerEnd;
  private foundEndedValue = false;
  /** `fail()` was called after a refusal left the answer open: that fail ends it. */
  private failedAfterRefusal = false;
  private settle!: () => void;
  /** Resolves once the answer is over: its end acknowledged, or sending stopped on a refusal. */
  readonly settled = new Promise<void>((resolve) => (this.settle = resolve));

  constructor(
    private readonly channel: CommandChannel,
    private readonly options: AnswerStreamOptions,
    started: Promise<AnswerState>,
  ) {
    this.conversationId = options.conversationId;
    this.messageId = options.messageId;
    this.ready = started.then((state) => {
      this.part = state.parts;
      this.epoch = state.epoch;
      if (state.status !== 'streaming') {
        this.finished = true;
        this.foundEndedValue = true;
        this.abort(`the answer is already ${state.status}`, state.status === 'complete' ? undefined : state.status);
      }
      return state;
    });
    // `ready` is optional to await; its rejection is reported through complete() and `signal`.
    this.ready.catch(() => undefined);
    this.pump();
  }

  /** Aborted when a device cancels the answer or the service refuses it; stop generating then. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /**
   * The refusal or failure that stopped this answer's sending (`FENCED`, `MESSAGE_FINISHED`,
   * `UNAVAILABLE` after retrying, ...); undefined while it sends, once it ended as asked, or when
   * only a device's cancel notice stopped it. `complete()` and `fail()` reject with it.
   */
  get refusal(): Error | undefined {
    return this.failure;
  }

  /**
   * How the answer was ended elsewhere, when its cancel notice stopped it, a command was refused
   * `MESSAGE_FINISHED` (the notice missed) or it was found ended on starting: `aborted` (a device
   * cancelled it) or `failed` (ended as abandoned: no command for the agent lease; or failed
   * before). Undefined otherwise, for instance when any other refusal stopped it.
   */
  get endedAs(): AnswerEnd | undefined {
    return this.endedAsValue;
  }

  /**
   * Whether the answer had ended already (complete, cancelled or failed) when this producer
   * started it: a prompt delivered again after the agent before it finished the answer but not
   * the prompt. Nothing of this producer's is sent then.
   */
  get foundEnded(): boolean {
    return this.foundEndedValue;
  }

  /** The most characters one append may carry (the service's `LIMIT_DELTA_CHARS`, as the agent was told it). */
  get maxDeltaChars(): number {
    return this.options.maxDeltaChars;
  }

  /** The most bytes one append's delta may take once JSON-encoded (from the service's `LIMIT_FRAME_BYTES`, as the agent was told it). */
  get maxDeltaBytes(): number {
    return this.options.maxDeltaBytes ?? DELTA_BYTES;
  }

  /**
   * Whether `fail()` has been called: the answer ends failed with its message, also after a
   * refusal that left it open (the fail is then sent again), so nobody need fail it.
   */
  get failing(): boolean {
    return this.end?.type === 'message.fail' || this.failedAfterRefusal;
  }

  /** Whether `complete()` or `fail()` has been called. */
  get ending(): boolean {
    return this.end !== undefined;
  }

  /** The number of the answer's last part sent (counting parts an earlier producer wrote before a takeover). */
  get parts(): number {
    return this.part;
  }

  /**
   * Adds text to the answer: plain text, or to a typed part (`block`). Text for the same block
   * as the previous call waits in one piece, so coalescing works per block; a set-whole field
   * (a tool's output or error, a data value) keeps only its latest value.
   *
   * @example
   * answer.append('Let me think', { type: 'reasoning', id: 'r1' });
   * answer.append('{"city":"Paris"}', { type: 'tool', id: 'call-1', toolName: 'weather' });
   * answer.append('{"celsius":21}', { type: 'tool', id: 'call-1', toolName: 'weather', field: 'output' });
   * answer.append('It is 21 °C in Paris.', { type: 'text', id: 't1' });
   */
  append(text: string, block?: BlockRef): void {
    if (this.end) throw new Error('append after complete() or fail()');
    if (text.length === 0 || this.controller.signal.aborted) return;
    this.appends++;
    const last = this.pending[this.pending.length - 1];
    if (last && sameTarget(last.block, block)) last.text = isSetWhole(block) ? text : last.text + text;
    else this.pending.push(block ? { block, text } : { text });
    if (!this.couldGrow()) this.endHold?.();
    this.pump();
  }

  /** Sends what is still pending and marks the answer complete. Rejects if the service refused any part. */
  async complete(): Promise<void> {
    await this.finish({ type: 'message.complete', messageId: this.messageId });
  }

  /**
   * Ends the answer as failed for every device, also after the service refused a part for what it
   * held (too large, malformed), which leaves the answer open. Rejects after a take-over or a cancel.
   */
  async fail(error: string): Promise<void> {
    const command = { type: 'message.fail', messageId: this.messageId, error: failureText(error) } as const;
    // An end (complete, or an earlier fail) stopped on a refusal for what was sent: the answer is
    // still open and this producer's, so it can still be failed for every device now.
    if (this.end && this.failure && this.epoch !== undefined && leavesAnswerOpen(this.failure)) {
      this.failedAfterRefusal = true;
      await this.settled;
      await this.channel.send(this.conversationId, { ...command, epoch: this.epoch });
      return;
    }
    await this.finish(command);
  }

  /**
   * Stops this producer for good, whatever it does next: nothing more is sent, not even its end,
   * and `complete()`/`fail()` reject with `error` (its prompt handler was given up, and the
   * prompt's next delivery takes the answer over).
   */
  revoke(error: Error): void {
    this.failure ??= error;
    this.finished = true;
    this.abort(error.message);
    this.pump();
  }

  /** Called when the service reports the answer ended for its agent (`endedAs`: how, as its notice said). */
  abort(reason: string, endedAs?: AnswerEnd): void {
    if (!this.controller.signal.aborted) {
      this.endedAsValue = endedAs;
      this.controller.abort(new Error(reason));
    }
    this.endHold?.();
  }

  private async finish(command: EndCommand): Promise<void> {
    if (this.end) throw new Error('answer already ended');
    this.end = command;
    this.endHold?.();
    this.pump();
    await this.settled;
    if (!this.failure) return;
    // A part refused for what it held (too large, malformed) leaves the answer open on the service,
    // still this producer's: a fail ends it for every device now rather than at the agent lease.
    // Not when the start itself was refused (no epoch): the answer, if any, is someone else's.
    if (command.type === 'message.fail' && this.epoch !== undefined && leavesAnswerOpen(this.failure)) {
      await this.channel.send(this.conversationId, { ...command, epoch: this.epoch });
      return;
    }
    throw this.failure;
  }

  /** Starts the send loop unless it is already running; it stops when nothing is left to send. */
  private pump(): void {
    if (this.sending) return;
    this.sending = true;
    void this.sendAll();
  }

  /**
   * Whether waiting could make the next append carry more: not at the end, not once aborted,
   * and not when the next append is full already (a whole slice, or a segment that more text can
   * no longer join).
   */
  private couldGrow(): boolean {
    return this.pending.length === 1 && this.pending[0].text.length < this.options.maxDeltaChars && !this.end && !this.controller.signal.aborted;
  }

  /** Waits the pacer's hold; cut short as soon as waiting could no longer make the next append carry more. */
  private async hold(): Promise<void> {
    const ms = this.channel.holdMs?.() ?? 0;
    if (ms < 1) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.endHold = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.endHold = undefined;
  }

  private async sendAll(): Promise<void> {
    try {
      await this.ready;
      // The first append of a run (the answer's first, or one after a pause) goes at once.
      for (let afterAck = false; ; afterAck = true) {
        if (this.finished) {
          // Ended before this producer started: nothing of it is sent.
          this.settle();
          return;
        }
        if (afterAck && this.couldGrow()) {
          await this.hold();
          // Revoked while it waited: not even the part it waited for goes.
          if (this.finished) {
            this.settle();
            return;
          }
        }
        const segment = this.pending[0];
        // The first half of a surrogate pair waits for its other half, which the next token brings
        // (a model's tokens may split an emoji): sent alone it is not text, and the service refuses it.
        const waitsForPair =
          segment !== undefined && this.pending.length === 1 && !this.end && !this.controller.signal.aborted && !isSetWhole(segment.block) && endsInHighSurrogate(segment.text);
        if (segment && waitsForPair && segment.text.length === 1) {
          this.sending = false;
          return;
        }
        if (segment) {
          const sendable = waitsForPair ? segment.text.slice(0, -1) : segment.text;
          // A set-whole value goes in one append (the service refuses one over the delta limit); streamed text in slices.
          // The block reference shares the frame: ids and tool names of escaped characters can take more than the room left for the rest of the command.
          const length = isSetWhole(segment.block)
            ? sendable.length
            : deltaLength(sendable, this.options.maxDeltaChars, this.maxDeltaBytes - (segment.block ? utf8Length(JSON.stringify(segment.block)) : 0));
          const whole = length === segment.text.length;
          const taken = whole ? segment.text : segment.text.slice(0, length);
          if (whole) this.pending.shift();
          else segment.text = segment.text.slice(length);
          // What can never be paired any more (the answer ends, another block follows) or is no text at all (NUL) goes as U+FFFD: refused, it would fail the answer.
          const delta = illFormedAt(taken) === undefined ? taken : wellFormed(taken);
          const block = segment.block ? { block: segment.block } : {};
          await this.channel.send(this.conversationId, { type: 'message.append', messageId: this.messageId, part: ++this.part, delta, ...block, epoch: this.epoch });
        } else if (this.end) {
          await this.channel.send(this.conversationId, { ...this.end, epoch: this.epoch });
          this.settle();
          return;
        } else {
          // Idle until the next append or the end; nothing is in flight.
          this.sending = false;
          return;
        }
      }
    } catch (error) {
      this.failure ??= error as Error;
      const code = error instanceof SeqlineError ? error.code : undefined;
      this.abort(abortReason(code, error as Error), endedAsOfRefusal(error as Error));
      this.settle();
    }
  }
}

function sameTarget(a: BlockRef | undefined, b: BlockRef | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (a.type !== b.type || a.id !== b.id) return false;
  if (a.type === 'tool' && b.type === 'tool') return a.toolName === b.toolName && (a.field ?? 'input') === (b.field ?? 'input');
  if (a.type === 'data' && b.type === 'data') return a.name === b.name;
  return true;
}

/** How a `MESSAGE_FINISHED` refusal says the answer ended, for a producer that missed the notice of it. */
function endedAsOfRefusal(error: Error): AnswerEnd | undefined {
  if (!(error instanceof SeqlineError) || error.code !== ErrorCode.MessageFinished) return undefined;
  return error.messageStatus === 'aborted' || error.messageStatus === 'failed' ? error.messageStatus : undefined;
}

function abortReason(code: ErrorCode | undefined, error: Error): string {
  switch (code) {
    case ErrorCode.MessageFinished:
      return 'the answer was ended elsewhere (a device cancelled it, or the service ended it as abandoned)';
    case ErrorCode.Fenced:
      return 'another producer took the answer over';
    default:
      return error.message;
  }
}
