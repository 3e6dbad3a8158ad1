import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import { jetstream, jetstreamManager, type Consumer, type ConsumerInfo, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { CancelNoticeSchema, endedAsOf, DEFAULT_LIMITS, ErrorCode, isRetryable, PromptSchema, SeqlineError, type AnswerState, type Prompt } from '@seqline/protocol';
import { connectNats, DEFAULT_AGENT_GROUP, ensurePromptConsumer, PROMPT_ACK_WAIT_MS, PROMPT_MAX_DELIVER, waitAtMost } from '@seqline/streams';
import { AnswerStream, deltaBytesFor } from './answer-stream.js';
import { leavesAnswerOpen } from './answer-refusal.js';
import { CommandSender } from './command-sender.js';
import { Semaphore } from './semaphore.js';

export interface AgentOptions {
  /** NATS server URL(s), comma-separated. */
  servers: string;
  /** Identifies this agent as the author of its answers. */
  agentId: string;
  /** The deployment's subject prefix (`SEQLINE_PREFIX` on the server). */
  prefix?: string;
  /** The JetStream stream holding prompts (`SEQLINE_STREAM` on the server). */
  stream?: string;
  /** Commands in flight at once across all answers (a batch counts each of its commands). Default 64. */
  maxInFlight?: number;
  /** How long to wait for the service to answer one command before sending it again. Default 5 s. */
  requestTimeoutMs?: number;
  /**
   * Hold each answer's next append back a little while the service's round trip is well above
   * its floor (a saturated service), so its queues stay short. Default true.
   */
  paceAppends?: boolean;
  /**
   * Send the commands that become ready at one moment (appends of many answers) for
   * conversations one instance writes as one request, instead of one request each. Default true.
   */
  batchCommands?: boolean;
  /**
   * The service's `LIMIT_DELTA_CHARS` and `LIMIT_FRAME_BYTES`, when they are set below their
   * defaults (16,384 characters and 64 KiB): appends are sliced to fit them, as the service
   * refuses a larger one for good.
   */
  limits?: { deltaChars?: number; frameBytes?: number };
  user?: string;
  password?: string;
}

const PROMPT_PULL_EXPIRES_MS = 5_000;
/** A prompt pulled later than this after the consumer's ack wait was read has it read again first. */
const ACK_WAIT_READ_EVERY_MS = 5_000;
/** How long a prompt's handler may go without starting an answer or appending to one before it is given up. */
const DEFAULT_STALL_MS = 10 * 60_000;
/** How long `close()` waits for the answers of prompts at their last delivery to be failed. */
const CLOSE_FAIL_WAIT_MS = 2_000;

/** The answers a prompt's handler started, so its prompt is settled by how they ended (see `handle`). */
const handlerAnswers = new AsyncLocalStorage<HandlerContext>();

interface HandlerContext {
  answers: AnswerStream[];
  /** Set once the handler is given up: what it does afterwards must not reach the service. */
  givenUp?: Error;
  /**
   * Aborted when the handler is given up: its starts still being retried (the service away) are
   * not sent again, or one would take the answer from the prompt's next delivery.
   */
  stopStarts: AbortController;
  /** The prompt consumer's settings as its `onPrompt` read them (each group has its own `max_deliver`). */
  timing: PromptTiming;
}

export type PromptHandler = (prompt: Prompt, agent: SeqlineAgent) => Promise<void>;


/** How long a prompt may go without an in-progress ack, shared by the prompts in progress. */
interface PromptTiming {
  ackWaitMs: number;
  /** The prompt consumer's `max_deliver` (-1: no limit): a prompt naked at its last delivery is never delivered again. */
  maxDeliver: number;
  stallMs: number;
  /** Per prompt in progress: acks it now (the ack wait became shorter). */
  shortened: Set<() => void>;
}
/**
 * The agent SDK.
 *
 * @example
 * const agent = await SeqlineAgent.connect({ servers: 'nats://127.0.0.1:4222', agentId: 'echo' });
 * await agent.onPrompt(async (prompt) => {
 *   // Derived from the prompt: a redelivered prompt continues its answer instead of starting a second one.
 *   const answer = agent.startMessage(prompt.conversationId, { messageId: `${prompt.messageId}-answer` });
 *   const { status, text } = await answer.ready; // where an earlier agent got to, if one stopped
 *   if (status !== 'streaming') return;
 *   const echo = prompt.text.split(' ').map((word) => word + ' ').join('');
 *   answer.append(echo.slice(text.length));
 *   await answer.complete();
 * });
 */
export class SeqlineAgent {
  private readonly answers = new Map<string, AnswerStream>();
  /** Prompts being handled, with their handlers' answers, handed back by `close()`. */
  private readonly prompts = new Map<JsMsg, HandlerContext>();
  private readonly sender: CommandSender;
  private cancelSubscription?: Subscription;
  private closed = false;
  private closing?: Promise<void>;
  /** Stops the timers that read the prompt consumer's ack wait again. */
  private readonly stopRereading: (() => void)[] = [];

  private constructor(
    readonly nc: NatsConnection,
    private readonly options: Required<Pick<AgentOptions, 'agentId' | 'prefix' | 'stream' | 'maxInFlight' | 'requestTimeoutMs' | 'paceAppends' | 'batchCommands'>> & { limits: { deltaChars: number; frameBytes: number } },
  ) {
    this.sender = new CommandSender(nc, { prefix: options.prefix, maxInFlight: options.maxInFlight, requestTimeoutMs: options.requestTimeoutMs, retryForMs: 120_000, paceAppends: options.paceAppends, batchCommands: options.batchCommands });
    this.cancelSubscription = nc.subscribe(this.sender.subjects.allCancels, {
      callback: (error, msg) => {
        if (error) return;
        // Whatever arrives here, a throw would end this connection's reading (replies, prompts) for good.
        const notice = CancelNoticeSchema.safeParse(parseJson(msg.data));
        if (!notice.success) return;
        const { conversationId, messageId, reason } = notice.data;
        this.answers.get(key(conversationId, messageId))?.abort(reason ?? 'cancelled by a device', endedAsOf(notice.data));
      },
    });
  }

  static async connect(options: AgentOptions): Promise<SeqlineAgent> {
    const nc = await connectNats({ url: options.servers, user: options.user, password: options.password, name: `seqline-agent-${options.agentId}` });
    const prefix = options.prefix ?? 'seqline';
    return new SeqlineAgent(nc, {
      agentId: options.agentId,
      prefix,
      stream: options.stream ?? `${prefix.toUpperCase().replace(/-/g, '_')}_LOG`,
      maxInFlight: options.maxInFlight ?? 64,
      requestTimeoutMs: options.requestTimeoutMs ?? 5_000,
      paceAppends: options.paceAppends ?? true,
      batchCommands: options.batchCommands ?? true,
      limits: { deltaChars: options.limits?.deltaChars ?? DEFAULT_LIMITS.deltaChars, frameBytes: options.limits?.frameBytes ?? DEFAULT_LIMITS.frameBytes },
    });
  }

  /**
   * Starts an answer in a conversation. `messageId` defaults to a new id; pass one derived from
   * the prompt so that an agent answering a redelivered prompt takes the same answer over
   * (`answer.ready` then says how far it got) instead of starting a second one.
   *
   * @example
   * const answer = agent.startMessage(prompt.conversationId, { messageId: `${prompt.messageId}-answer` });
   * const { status, text } = await answer.ready;
   * if (status !== 'streaming') return; // answered before
   * for await (const token of model.stream(prompt.text, { prefix: text })) answer.append(token);
   * await answer.complete();
   */
  startMessage(conversationId: string, options: { messageId?: string; text?: string } = {}): AnswerStream {
    const messageId = options.messageId ?? randomUUID();
    // A new producer id per answer attempt: a start sent again by this attempt is a retry; one by another attempt takes the answer over.
    const producerId = randomUUID();
    const context = handlerAnswers.getStore();
    // A handler given up that starts an answer late would take it from the prompt's next delivery.
    const started = context?.givenUp
      ? Promise.reject(context.givenUp)
      : this.sender
          .send(conversationId, { type: 'message.start', messageId, agentId: this.options.agentId, text: options.text ?? '', producerId }, context?.stopStarts.signal)
          .then((reply): AnswerState => reply.answer ?? { status: 'streaming', parts: 0, text: options.text ?? '', epoch: 1 });
    const answer = new AnswerStream(this.sender, { conversationId, messageId, maxDeltaChars: this.options.limits.deltaChars, maxDeltaBytes: deltaBytesFor(this.options.limits.frameBytes) }, started);
    const answerKey = key(conversationId, messageId);
    this.answers.set(answerKey, answer);
    // Only while it may still be cancelled; a later start of the same message has replaced it.
    const forget = (): void => {
      if (this.answers.get(answerKey) === answer) this.answers.delete(answerKey);
    };
    answer.signal.addEventListener('abort', forget, { once: true });
    void answer.settled.then(forget);
    context?.answers.push(answer);
    return answer;
  }

  /** Answers being worked on in this process (started and not yet over). */
  get activeAnswers(): number {
    return this.answers.size;
  }

  /**
   * Receives user messages posted to any conversation. Agents with the same `group` share the
   * work: each prompt goes to one of them, and is redelivered if that one dies or stalls before
   * finishing (in-progress acks are sent while the handler runs). At most `concurrency` (16)
   * handlers run at once in this process, and a prompt is pulled only when one is free: the rest
   * wait in the stream, for this agent or another.
   *
   * When a handler throws, what happens to its prompt depends on why:
   * - `FENCED` (another agent took the answer over): left to that agent;
   * - `MESSAGE_FINISHED` (a device cancelled the answer, or it was ended elsewhere): done with;
   * - `UNAVAILABLE`, `RATE_LIMITED`, or an error of the handler's own (the model failed):
   *   redelivered after a second, up to 10 deliveries in all;
   * - any other refusal (the same prompt would be refused again): given up.
   *
   * A handler that returns normally is settled the same way by the first refusal among the
   * answers it started (`answer.refusal`): one that returns when `signal` aborts need not tell
   * a take-over from a cancel. With no refusal, its prompt is done with. So is one that throws
   * because its answer stopped (a model call given `signal` rejects with an `AbortError`): an
   * answer taken over leaves the prompt to its new holder, one ended elsewhere is done with. An
   * end the handler sent without awaiting it is answered before its prompt is settled.
   *
   * Once a prompt is acked or terminated, or handed back at its last delivery (never to be
   * delivered again), an answer its handler left open (never ended, or refused for what a part
   * held) is failed at once, with the refusal's message, "its prompt handler failed: <its error>"
   * or "its prompt handler ended without ending its answer", rather than streaming until the
   * agent lease. `close()` and a stalled handler given up leave a prompt whose answer another
   * agent took over to that agent, as a handler's return does.
   *
   * Pulling prompts that fails (the stream not created yet, NATS restarting, a permission
   * missing) is set up again, after 0.5 s doubling up to 10 s while it keeps failing; `onError`
   * hears each failure.
   *
   * A handler that neither starts an answer nor appends to one for `stallMs` (10 minutes) is
   * given up: its answers' `signal` aborts, its prompt goes back to be redelivered (the next
   * delivery takes its answer over) and its slot is free again. `Infinity` never gives up.
   */
  async onPrompt(handler: PromptHandler, options: { group?: string; concurrency?: number; stallMs?: number; onError?: (error: unknown) => void } = {}): Promise<void> {
    const group = options.group ?? DEFAULT_AGENT_GROUP;
    const concurrency = options.concurrency ?? 16;
    const stallMs = options.stallMs ?? DEFAULT_STALL_MS;
    const running = new Semaphore(concurrency);
    const jsm = await jetstreamManager(this.nc);
    const ensure = () => ensurePromptConsumer(jsm, this.options.stream, this.sender.subjects.allPrompts, group);
    // The first setup is awaited, so prompts flow as soon as this resolves when the stream exists;
    // a failure (the stream not created yet by the service, a NATS restart) is retried by the loop
    // below, so an agent may start before the service.
    let ready: Promise<void> | undefined = ensure();
    await ready.catch(() => undefined);
    // One for every set-up of the pull loop: prompts still in progress from before a set-up go on
    // reading the ack wait read since.
    const timing: PromptTiming = { ackWaitMs: PROMPT_ACK_WAIT_MS, maxDeliver: PROMPT_MAX_DELIVER, stallMs, shortened: new Set() };
    const setAckWait = (ms: number): void => {
      const before = timing.ackWaitMs;
      timing.ackWaitMs = ms;
      // Shorter now: each prompt in progress acks at once, since its next in-progress ack was
      // planned for the longer wait and could come after the new one has run out (redelivered
      // to another agent mid-answer, a second model call for one question).
      if (ms < before) for (const beatNow of [...timing.shortened]) beatNow();
    };
    /** Reads of the ack wait begun, over every set-up: a read answered after a later one began is stale. */
    let ackWaitReads = 0;
    /** `cached`: as the consumer was read when it was got (at a set-up). */
    const readAckWaitOf = async (consumer: Consumer, cached = false): Promise<number | undefined> => {
      const read = ++ackWaitReads;
      const info = await consumer.info(cached);
      if (read !== ackWaitReads) return undefined;
      timing.maxDeliver = info.config.max_deliver ?? PROMPT_MAX_DELIVER;
      return ackWaitOf(info);
    };
    let rereading: ReturnType<typeof setInterval> | undefined;
    /** Set-ups failed in a row: the wait before the next grows with them. */
    let failures = 0;
    /** Ends the wait before the next set-up. */
    let wake: (() => void) | undefined;
    this.stopRereading.push(() => wake?.());
    this.stopRereading.push(() => clearInterval(rereading));
    void (async () => {
      while (!this.closed) {
        try {
          if (ready) await ready;
          ready = undefined;
          const consumer = await jetstream(this.nc).consumers.get(this.options.stream, group);
          // Shared with the prompts in progress, which read it at each in-progress ack.
          const ackWaitMs = await readAckWaitOf(consumer, true);
          // Closed while that was read: no timer is set up after `close()` stopped them.
          if (this.closed) break;
          if (ackWaitMs !== undefined) setAckWait(ackWaitMs);
          failures = 0;
          let ackWaitReadAt = performance.now();
          /** The service applies PROMPT_ACK_WAIT when it starts: since then it may have changed. */
          const readAckWait = async (tick = false): Promise<void> => {
            // At a prompt pulled, only once it is this old; at every tick of the interval, so one
            // read at a pull does not put the next off to the tick after.
            if (!tick && performance.now() - ackWaitReadAt <= ACK_WAIT_READ_EVERY_MS) return;
            ackWaitReadAt = performance.now();
            const ms = await readAckWaitOf(consumer).catch(() => undefined);
            if (ms !== undefined) setAckWait(ms);
          };
          // Also while every handler is busy and nothing is pulled: the prompts in progress need it most.
          // One per set-up: the one before went with the consumer it read.
          clearInterval(rereading);
          rereading = setInterval(() => void (this.prompts.size > 0 ? readAckWait(true) : undefined), ACK_WAIT_READ_EVERY_MS);
          rereading.unref();
          while (!this.closed) {
            // A prompt is pulled only once a handler is free for it: one pulled ahead would wait
            // with its ack wait running and be redelivered to another agent meanwhile. Short pulls:
            // JetStream keeps sending to a dead agent's open pull until it expires, so a prompt
            // whose agent was killed would wait out a long pull before another agent gets it.
            await running.acquire();
            let msg: JsMsg | null = null;
            try {
              msg = await consumer.next({ expires: PROMPT_PULL_EXPIRES_MS });
            } finally {
              if (!msg) running.release();
            }
            if (!msg) continue;
            // Not awaited: asking the service can take seconds, and the prompt's first in-progress
            // ack is planned from its start. A shorter wait read meanwhile acks it at once.
            void readAckWait();
            // Delivered to the open pull while `close()` drains: handed straight back, since its
            // handler could send nothing, and its nak later would be lost with the connection.
            if (this.closed) {
              ignoreClosed(() => msg?.nak());
              running.release();
              break;
            }
            this.handle(msg, handler, timing, () => running.release());
          }
        } catch (error) {
          if (this.closed) break;
          try {
            options.onError?.(error);
          } catch {
            // The app's listener failing must not stop the pulling.
          }
          ready = ensure();
          // Awaited on the next turn; until then a rejection must not count as unhandled.
          ready.catch(() => undefined);
          // 0.5 s, doubling up to 10 s while it keeps failing (a stream not created yet, a permission missing); `close()` ends the wait.
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, Math.min(500 * 2 ** failures++, 10_000));
            wake = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          wake = undefined;
        }
      }
    })();
  }

  /**
   * Closes the connection. Commands still waiting for the service fail with `UNAVAILABLE` at
   * once (their answers cannot be received any more), and prompts being handled are left to
   * be redelivered to another agent, except one whose answer another agent took over (that
   * agent's) or a device cancelled (acked); at its last delivery a prompt's open answers are failed first.
   * A prompt whose answers are all ending (`complete()` or `fail()` called) has those ends sent first,
   * for up to 2 s, and is then done with, as when its handler returns.
   */
  close(): Promise<void> {
    // Twice (SIGINT and SIGTERM together, as a terminal's Ctrl-C and a supervisor send): the same close, not a second drain that throws.
    this.closing ??= this.closeOnce();
    return this.closing;
  }

  private async closeOnce(): Promise<void> {
    this.closed = true;
    for (const stop of this.stopRereading) stop();
    this.cancelSubscription?.unsubscribe();
    // Handed back now, so another agent takes each over at once rather than after its ack wait;
    // but not one whose answer another agent took over (a nak would hand that agent's prompt to a
    // third), nor one whose answer was ended elsewhere (done with).
    const ending: Promise<void>[] = [];
    /** Prompts whose every answer is ending (its complete or fail on the way): let finish, not handed back. */
    const ended = new Map<JsMsg, AnswerStream[]>();
    for (const [msg, context] of this.prompts) {
      if (context.answers.length > 0 && context.answers.every((answer) => answer.ending)) {
        ended.set(msg, context.answers);
        // Nothing new starts meanwhile: an answer started during the wait would be left to nobody.
        context.givenUp = new Error('the agent was closed');
        context.stopStarts.abort(context.givenUp);
        continue;
      }
      ignoreClosed(() => settleByAnswers(msg, context.answers, () => (msg.nak(), 'nak')));
      // At its last delivery no agent gets the prompt again: its open answers are failed now, while commands still go out.
      if (lastDelivery(msg, context.timing)) for (const answer of context.answers) if (!answer.ending && answer.refusal === undefined) ending.push(answer.fail('the agent was closed at its prompt\'s last delivery').catch(() => undefined));
    }
    // Handed back with its end still unanswered, a whole answer would stay streaming and end failed
    // (the next agent finds it written by another): its end goes out first, within the same wait.
    const endsAnswered = new Set<JsMsg>();
    for (const [msg, answers] of ended) ending.push(Promise.all(answers.map((answer) => answer.settled)).then(() => void endsAnswered.add(msg)));
    await waitAtMost(Promise.all(ending), CLOSE_FAIL_WAIT_MS);
    for (const [msg, answers] of ended) {
      // Done with only when every end went through: one refused with the answer left open (a part
      // it held) is handed back, so the next delivery ends that answer.
      const done = endsAnswered.has(msg) && answers.every((answer) => answer.refusal === undefined || !leavesAnswerOpen(answer.refusal));
      ignoreClosed(() => settleByAnswers(msg, answers, () => (done ? settleReturned(msg, answers) : (msg.nak(), 'nak'))));
    }
    // Handlers that watch `signal` stop generating: nothing they append can be sent any more.
    for (const answer of this.answers.values()) answer.abort('the agent was closed');
    this.sender.close();
    await this.nc.drain();
  }

  /** Runs `handler` on one prompt, keeping it in progress meanwhile, and acks it as `onPrompt` says. */
  private handle(msg: JsMsg, handler: PromptHandler, timing: PromptTiming, done: () => void): void {
    const parsed = PromptSchema.safeParse(parseJson(msg.data));
    if (!parsed.success) {
      ignoreClosed(() => msg.term());
      return done();
    }
    const context: HandlerContext = { answers: [], stopStarts: new AbortController(), timing };
    this.prompts.set(msg, context);
    const answers = context.answers;
    /** Answers started and appends made, as last seen, and when that last grew. */
    let progress = 0;
    let progressAt = performance.now();
    /** The answers whose ends are awaited, once the handler has ended every answer it started; and since when those ends are answered. */
    let ends: AnswerStream[] | undefined;
    let endsSettledAt: number | undefined;
    let over = false;
    /** Settles the prompt once: a stalled handler given up may still return later, and must not settle it again or free a second slot. */
    const finish = (settle: () => Settlement, unended: string): void => {
      if (over) return;
      over = true;
      clearTimeout(keepAlive);
      timing.shortened.delete(beatNow);
      this.prompts.delete(msg);
      let settled: Settlement;
      try {
        // `close()` handed the prompt back already: an ack now would take it from the next agent.
        settled = this.closed ? 'nak' : settle();
      } catch {
        // The connection is closed or draining: the prompt is redelivered to another agent.
        settled = 'nak';
      }
      // Naked at its last delivery, the prompt is never delivered again either.
      const final = settled === 'ack' || settled === 'term' || (settled === 'nak' && lastDelivery(msg, timing));
      for (const answer of answers) {
        // Still open on the service and this producer's: never ended, or refused for what a part held.
        // One the handler failed itself is ended by that fail, with the handler's message.
        const open = answer.refusal === undefined ? !answer.ending : leavesAnswerOpen(answer.refusal) && !answer.failing;
        // Acked or refused for good, the prompt is never delivered again: an answer still open
        // would spin on every device until the agent lease, then fail as abandoned. It fails now,
        // saying why. One a redelivery will take over, or ended elsewhere, is only let go.
        if (open && final && answer.endedAs === undefined) answer.fail(answer.refusal?.message ?? unended).catch(() => undefined);
        else if (!answer.ending) answer.abort(unended);
      }
      done();
    };
    /**
     * A handler that returned on `signal` (as the examples do) has not said why its answer
     * stopped: its answers have. A prompt whose answer another agent took over is that agent's
     * to settle; one whose answer the service could not take is tried again.
     */
    const settleAsReturned = (): Settlement => settleReturned(msg, answers);
    // Each wait is worked out again: the ack wait may have been read anew meanwhile.
    const nextBeat = (): number => Math.max(100, Math.min(timing.ackWaitMs / 3, timing.stallMs / 2));
    const beat = (): void => {
      const seen = answers.reduce((count, answer) => count + 1 + answer.appends, 0);
      if (seen !== progress) {
        progress = seen;
        progressAt = performance.now();
      }
      const allEnded = answers.length > 0 && answers.every((answer) => answer.ending);
      if (!allEnded) ends = endsSettledAt = undefined;
      else if (ends?.length !== answers.length) {
        const these = [...answers];
        ends = these;
        endsSettledAt = undefined;
        void Promise.allSettled(these.map((answer) => answer.settled)).then(() => {
          if (ends === these) endsSettledAt = performance.now();
        });
      }
      // Every answer ended, its end answered, and the handler still not back `stallMs` later: its
      // work is done, and the prompt is settled as a return would settle it, so a handler that
      // hangs afterwards does not hold the prompt and its slot for ever. What it starts later goes nowhere.
      if (endsSettledAt !== undefined && performance.now() - endsSettledAt >= timing.stallMs) {
        context.givenUp = new Error('its prompt was settled: the handler ended its answers and did not return');
        context.stopStarts.abort(context.givenUp);
        return finish(settleAsReturned, 'its prompt handler ended without ending its answer');
      }
      // Every answer ended: the handler's work is done, and the branch above settles the prompt in
      // time. One answer ended and another still open is judged by its progress like any other.
      if (performance.now() - progressAt < timing.stallMs || allEnded) {
        ignoreClosed(() => msg.working());
        keepAlive = setTimeout(beat, nextBeat());
        // The handler's work keeps a process alive, not this.
        keepAlive.unref();
        return;
      }
      const reason = `its prompt handler made no progress for ${timing.stallMs} ms`;
      context.givenUp = new Error(reason);
      context.stopStarts.abort(context.givenUp);
      // At its last delivery no next one takes the answers over: they are failed (below), not let go silently.
      const last = lastDelivery(msg, timing);
      if (!last) for (const answer of answers) answer.revoke(context.givenUp);
      finish(() => settleByAnswers(msg, answers, () => (last ? (msg.term(), 'term') : (msg.nak(1_000), 'nak'))), reason);
    };
    let keepAlive = setTimeout(beat, nextBeat());
    keepAlive.unref();
    const beatNow = (): void => {
      clearTimeout(keepAlive);
      beat();
    };
    timing.shortened.add(beatNow);
    // A handler that throws before its first await is handled like one that rejects.
    void Promise.resolve()
      .then(() => handlerAnswers.run(context, () => handler(parsed.data, this)))
      .then(
        async () => {
          // An end sent and not answered yet (a handler that did not await `complete()`) decides
          // how the prompt settles: acked before the answer is, a crash now would lose it for good.
          await Promise.all(answers.filter((answer) => answer.ending).map((answer) => answer.settled));
          finish(settleAsReturned, 'its prompt handler ended without ending its answer');
        },
        (error: unknown) =>
          // A handler that throws because its answer stopped (a model call aborted by `signal` after
          // a takeover or a cancel) settles as its answers say: a nak would hand the new holder's
          // prompt to a third agent. Otherwise by what it threw; its unended answers are let go.
          finish(() => {
            const refusal = refusalOf(answers);
            if (isSeqlineCode(refusal, ErrorCode.Fenced) || isSeqlineCode(refusal, ErrorCode.MessageFinished)) return settlePrompt(msg, refusal);
            if (answers.some((answer) => answer.endedAs !== undefined || answer.foundEnded)) return (msg.ack(), 'ack');
            return settlePrompt(msg, error);
          }, `its prompt handler failed: ${error instanceof Error ? error.message : String(error)}`),
      );
  }
}

function ackWaitOf(info: ConsumerInfo): number {
  return (info.config.ack_wait ?? PROMPT_ACK_WAIT_MS * 1_000_000) / 1_000_000;
}

/** After `close()` the connection refuses acks; the prompt is redelivered to another agent then, which is what is wanted. */
function ignoreClosed(ack: () => void): void {
  try {
    ack();
  } catch {
    // The connection is closed or draining.
  }
}

/** What became of a prompt: `none` when another agent holds it now (its answer was taken over). */
type Settlement = 'none' | 'ack' | 'nak' | 'term';

/** What a prompt whose handler failed needs: see `onPrompt`. */
function settlePrompt(msg: JsMsg, error: unknown): Settlement {
  const code = error instanceof SeqlineError ? error.code : undefined;
  if (code === ErrorCode.Fenced) return 'none';
  if (code === ErrorCode.MessageFinished) {
    msg.ack();
    return 'ack';
  }
  if (code === undefined || isRetryable(code)) {
    msg.nak(1_000);
    return 'nak';
  }
  msg.term();
  return 'term';
}

/**
 * A prompt whose answer another agent took over is that agent's to settle: a nak would hand it to
 * a third. One whose answer was ended elsewhere (a device cancelled it: the notice, or a refusal
 * saying so) is done with.
 */
function settleByAnswers(msg: JsMsg, answers: readonly AnswerStream[], otherwise: () => Settlement): Settlement {
  const refusal = refusalOf(answers);
  if (isSeqlineCode(refusal, ErrorCode.Fenced)) return 'none';
  // Not one the service ended as abandoned (`failed`): that prompt is tried again.
  if (isSeqlineCode(refusal, ErrorCode.MessageFinished) || answers.some((answer) => answer.endedAs === 'aborted' || answer.foundEnded)) {
    msg.ack();
    return 'ack';
  }
  return otherwise();
}

/** Settles a prompt as its handler's return does: acked, unless one of its answers was refused. */
function settleReturned(msg: JsMsg, answers: readonly AnswerStream[]): Settlement {
  const refusal = refusalOf(answers);
  return refusal ? settlePrompt(msg, refusal) : (msg.ack(), 'ack');
}

/** The first refusal among a handler's answers. */
function refusalOf(answers: readonly AnswerStream[]): Error | undefined {
  return answers.map((answer) => answer.refusal).find((error) => error !== undefined);
}

/** Whether this is the prompt's last delivery: naked now, it is not delivered again. */
function lastDelivery(msg: JsMsg, timing: PromptTiming): boolean {
  return timing.maxDeliver > 0 && msg.info.deliveryCount >= timing.maxDeliver;
}

function isSeqlineCode(error: unknown, code: ErrorCode): boolean {
  return error instanceof SeqlineError && error.code === code;
}

/** A prompt that is not JSON (written by hand, not by the service) is refused like a malformed one. */
function parseJson(data: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(data));
  } catch {
    return undefined;
  }
}

function key(conversationId: string, messageId: string): string {
  return `${conversationId}\u0000${messageId}`;
}
