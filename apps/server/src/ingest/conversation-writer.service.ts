import { Inject, Injectable } from '@nestjs/common';
import type { Settings } from '@seqline/config';
import { ConversationLog, LogStream, WrongLastSequenceError, type LogEntry } from '@seqline/streams';
import { ErrorCode, formatCursor, SeqlineError, type AnswerState, type LogEvent } from '@seqline/protocol';
import { SETTINGS } from '../core/tokens.js';
import { KeyedMutex } from '../core/keyed-mutex.js';
import { within } from '../core/within.js';
import { applyEntry, type ConversationState } from '@seqline/persistence';
import { LogGapError, SnapshotService } from '../state/snapshot.service.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { decide } from './command-decider.js';
import type { IngestCommand } from './ingest-command.js';
import { ConversationStateCache, messageBytes } from './conversation-state-cache.js';
import { startReplyRefusal } from './reply-sender.js';

const MAX_CACHED_CONVERSATIONS = 10_000;
/** What the cached states may hold together (see `stateBytes`). */
const MAX_CACHED_BYTES = 64 * 1024 * 1024;
const MAX_ATTEMPTS = 20;
/** Refusals that a cache behind the log could give wrongly; every other refusal stays true as the log grows. */
const STALE_SENSITIVE = new Set<ErrorCode>([ErrorCode.UnknownMessage, ErrorCode.PartOutOfOrder, ErrorCode.Fenced]);
/**
 * Refusals that say the log lacks something the agent already had acknowledged. Right after a
 * leader election the new stream leader can answer reads before it has applied every write the
 * old one acknowledged, so these are looked at again a little later before they stand.
 */
const MISSING_SENSITIVE = new Set<ErrorCode>([ErrorCode.UnknownMessage, ErrorCode.PartOutOfOrder]);

/**
 * Whether a refusal may only say the log lacks an acknowledged write (see MISSING_SENSITIVE). A
 * command naming a newer producer epoch than the log shows comes from a takeover whose
 * `message.start` was acknowledged: the log lacks it, the command is not fenced.
 */
function lacksAcknowledged(code: ErrorCode, command: IngestCommand, state: ConversationState): boolean {
  if (MISSING_SENSITIVE.has(code)) return true;
  if (code !== ErrorCode.Fenced || !('epoch' in command) || command.epoch === undefined) return false;
  return command.epoch > (state.messages.get(command.messageId)?.producerEpoch ?? 0);
}
const RECHECK_DELAYS_MS = [100, 300, 1_000];
/** A refusal to look at again after the next delay, with the conversation unlocked meanwhile. */
const RECHECK_LATER = Symbol('recheck later');
/**
 * The longest a state build (Postgres, then the log) may hold a conversation's lock. A database
 * that stops answering without closing its connections (a network partition) would otherwise
 * hold every write of the conversation until TCP gives up, minutes later, with no answer at all.
 */
const STATE_BUILD_TIMEOUT_MS = 10_000;

/** A state build under way: of which log epoch, and whether a writer took its result. */
interface StateBuild {
  promise: Promise<ConversationState>;
  epoch: string;
  taken: boolean;
  startedAt: number;
}
/** How long writers wait for a state build under way rather than start one of their own. */
const SHARED_BUILD_MS = 30_000;
const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

export interface WriteResult {
  cursor: string;
  duplicate: boolean;
  entry?: LogEntry;
  /** For `message.start`: the answer as it stands, so its producer can go on from there. */
  answer?: AnswerState;
  /** The instance owning the conversation's write partition, when that one wrote it. */
  writer?: string;
}

/**
 * The only writer of conversation logs. Any instance may write any conversation: each write
 * names the sequence it follows, so a write based on stale state is refused by JetStream and
 * retried on fresh state. The state cached here is only a cache of the log.
 */
@Injectable()
export class ConversationWriter {
  private readonly states = new ConversationStateCache(MAX_CACHED_CONVERSATIONS, MAX_CACHED_BYTES);
  private readonly mutex = new KeyedMutex();
  /** State builds under way, one per conversation (see `sharedBuild`). */
  private readonly builds = new Map<string, StateBuild>();

  constructor(
    private readonly log: ConversationLog,
    private readonly stream: LogStream,
    private readonly snapshots: SnapshotService,
    private readonly metrics: MetricsService,
    @Inject(SETTINGS) private readonly settings: Settings,
  ) {
    // Every cached state counts in the old log's sequences.
    this.stream.onEpochChange(() => {
      this.states.clear();
      this.builds.clear();
    });
  }

  /** Forgets the states of a write partition this instance no longer owns. */
  forgetPartition(partition: number): void {
    this.states.dropPartition(partition);
  }

  async write(conversationId: string, command: IngestCommand): Promise<WriteResult> {
    for (let recheck = 0; ; recheck++) {
      const outcome = await this.mutex.run(conversationId, () => this.writeLocked(conversationId, command, recheck));
      if (outcome !== RECHECK_LATER) return outcome;
      // Waited out with the conversation unlocked: a stray command does not hold up the others.
      await sleep(RECHECK_DELAYS_MS[recheck]!);
    }
  }

  /**
   * One turn under the conversation's lock. `recheck` counts the turns before it that ended in
   * `RECHECK_LATER`; each later turn first reads what the log gained meanwhile.
   */
  private async writeLocked(conversationId: string, command: IngestCommand, recheck: number): Promise<WriteResult | typeof RECHECK_LATER> {
    let caughtUp = false;
    let expectedLast: number | undefined;
    /** Whether this turn already dropped a cached state found ahead of the log. */
    let rebuilt = false;
    if (recheck > 0) {
      await this.catchUp(conversationId, await this.state(conversationId));
      caughtUp = true;
    }
    for (let attempt = 1; ; attempt++) {
      const state = await this.state(conversationId);
      let decision;
      try {
        decision = decide(conversationId, state.messages, command, this.settings.limits, new Date());
      } catch (error) {
        // Another instance may have written what this refusal says is missing: look at the log before refusing.
        if (!(error instanceof SeqlineError) || !STALE_SENSITIVE.has(error.code)) throw error;
        // Fenced by a takeover this state already shows: the log only moves on, so no read can undo it
        // (a fenced producer that keeps sending would otherwise cost a rebuild from Postgres each time).
        if (error.code === ErrorCode.Fenced && 'epoch' in command && command.epoch !== undefined && !lacksAcknowledged(error.code, command, state)) throw error;
        if (!caughtUp) {
          await this.catchUp(conversationId, state);
          caughtUp = true;
          continue;
        }
        // A log emptied by retention hides what this state missed: Postgres has it. Not for a
        // producer fenced by a takeover the state shows: a takeover is never undone, and a fenced
        // agent replaying what it buffered would cost a read of the whole conversation per command.
        if (!rebuilt && recheck === 0 && error.code !== ErrorCode.Fenced) {
          this.rebuild(conversationId, 'refusal');
          rebuilt = true;
          continue;
        }
        if (lacksAcknowledged(error.code, command, state) && recheck < RECHECK_DELAYS_MS.length) return RECHECK_LATER;
        throw error;
      }
      if (decision.kind === 'duplicate') {
        // A repeated start is answered with the answer as it stands, from which its producer goes on:
        // a cache behind the log (written meanwhile through another instance) would send it back to
        // parts already written.
        if (command.type === 'message.start' && !caughtUp) {
          await this.catchUp(conversationId, state);
          caughtUp = true;
          continue;
        }
        return this.result(state, command, decision.seq, true);
      }
      if (decision.event.type === 'message.claimed') this.requireClaimReplyFits(state, decision.event);
      try {
        const result = await this.log.append(conversationId, decision.event, state.seq, decision.msgId, expectedLast ?? state.seq);
        if (result.duplicate) {
          // JetStream already holds an event under this key (a request whose reply was lost, or
          // another command for the same part): the cached state is behind. Judged again on the
          // caught-up state, a true repeat is a duplicate and other content is refused there.
          await this.catchUp(conversationId, state);
          const again = decide(conversationId, state.messages, command, this.settings.limits, new Date());
          // Still not in the log: the key was another event's (or the log is not yet read that far). Not a success to report.
          if (again.kind !== 'duplicate') throw new SeqlineError(ErrorCode.Unavailable, 'the log took this write for a repeat of another; retry shortly');
          return this.result(state, command, again.seq, true);
        }
        const entry: LogEntry = { conversationId, seq: result.seq, prev: state.seq, event: decision.event, time: new Date() };
        const written = state.messages.get(decision.event.messageId);
        const before = written ? messageBytes(written) : 0;
        applyEntry(state, entry, this.stream.epoch);
        const after = state.messages.get(decision.event.messageId);
        this.states.grew(conversationId, (after ? messageBytes(after) : 0) - before);
        this.metrics.eventsWritten.inc({ type: decision.event.type });
        return { ...this.result(state, command, result.seq, false), entry };
      } catch (error) {
        if (!(error instanceof WrongLastSequenceError) || attempt >= MAX_ATTEMPTS) throw error;
        this.metrics.writeConflicts.inc();
        const before = state.seq;
        await this.catchUp(conversationId, state);
        if (state.seq !== before) {
          expectedLast = undefined;
          continue;
        }
        // Nothing new, yet refused: either the log was recreated (its sequences start again; the
        // state is rebuilt on the new epoch), or retention emptied the subject, so JetStream
        // expects 0 while the chain goes on from `prev`.
        // (A new epoch clears every cached state through the epoch listener.)
        if (await this.stream.refresh()) {
          expectedLast = undefined;
          continue;
        }
        const last = await this.log.lastSeq(conversationId);
        if (last === 0) {
          // The chain goes on from the conversation's last event, which a cached state may have
          // missed (written through another instance, then dropped with the rest): from Postgres.
          if (!rebuilt) {
            this.rebuild(conversationId, 'emptied');
            rebuilt = true;
          } else {
            expectedLast = 0;
          }
          continue;
        }
        // Written to since the catch-up a moment ago: the next attempt is refused again and catches up.
        if (last >= state.seq) {
          expectedLast = undefined;
          continue;
        }
        // The log ends before what this state holds: events it acknowledged are gone (a write an
        // unreplicated stream lost in a crash). The state is built again, from Postgres and the log.
        if (!rebuilt) {
          this.rebuild(conversationId, 'behind');
          rebuilt = true;
          expectedLast = undefined;
          continue;
        }
        // Postgres has the lost events too, and the log now numbers new events at or before them:
        // each would read as one already seen and be dropped everywhere. Refused instead (see
        // "Replicas" in docs/production.md).
        throw new SeqlineError(ErrorCode.Unavailable, `the log of ${conversationId} ends at ${last}, before event ${state.seq} that Postgres holds: the log lost acknowledged events; writes wait until it is recreated`);
      }
    }
  }

  private async state(conversationId: string): Promise<ConversationState> {
    for (;;) {
      const cached = this.states.get(conversationId);
      if (cached) return cached;
      const building = this.sharedBuild(conversationId);
      const state = await this.timed(conversationId, building.promise);
      building.taken = true;
      // Built while the log was recreated: its sequences are the old log's, so it is built again.
      if (this.stream.epoch !== building.epoch) continue;
      this.states.set(conversationId, state);
      return state;
    }
  }

  /**
   * The conversation's state build under way, or a new one. One at a time per conversation: a
   * build that outlasts its writer's wait (a database that stopped answering) is not started
   * again by every retry, each holding a connection. One that ends after every writer waiting
   * for it gave up is cached for the next (an honestly slow build would otherwise never land).
   */
  private sharedBuild(conversationId: string): StateBuild {
    const existing = this.builds.get(conversationId);
    // Past a while, one on a connection the network cut off is left to itself: a new one (on a
    // connection made since) lands as soon as the network is back.
    if (existing && performance.now() - existing.startedAt < SHARED_BUILD_MS) return existing;
    const building: StateBuild = { promise: this.snapshots.build(conversationId), epoch: this.stream.epoch, taken: false, startedAt: performance.now() };
    this.builds.set(conversationId, building);
    const forget = (): void => {
      if (this.builds.get(conversationId) === building) this.builds.delete(conversationId);
    };
    building.promise.then((state) => {
      forget();
      // Deferred a turn: a writer whose wait ended with this very result takes it first.
      setImmediate(() => {
        if (!building.taken && this.stream.epoch === building.epoch && !this.states.get(conversationId)) this.states.set(conversationId, state);
      });
    }, forget);
    return building;
  }

  /** `promise`, or `UNAVAILABLE` after `STATE_BUILD_TIMEOUT_MS` (the conversation's lock is held meanwhile). */
  private timed(conversationId: string, promise: Promise<ConversationState>): Promise<ConversationState> {
    return within(promise, STATE_BUILD_TIMEOUT_MS, () => new SeqlineError(ErrorCode.Unavailable, `the state of ${conversationId} could not be read in ${STATE_BUILD_TIMEOUT_MS / 1000} s (the database or the log is not answering); retry shortly`));
  }

  /** Forgets a cached state: the next attempt builds it again from Postgres and the log. */
  private rebuild(conversationId: string, reason: 'refusal' | 'emptied' | 'behind'): void {
    this.states.delete(conversationId);
    this.metrics.statesRebuilt.inc({ reason });
  }

  private async catchUp(conversationId: string, state: ConversationState): Promise<void> {
    try {
      await this.snapshots.catchUp(state);
    } catch (error) {
      if (!(error instanceof LogGapError)) throw error;
      // Built again in place: the caller goes on with this state.
      this.metrics.statesRebuilt.inc({ reason: 'gap' });
      const fresh = await this.timed(conversationId, this.snapshots.build(conversationId));
      state.seq = fresh.seq;
      state.messages = fresh.messages;
    }
    this.states.recount(conversationId);
  }

  private result(state: ConversationState, command: IngestCommand, seq: number, duplicate: boolean): WriteResult {
    const result: WriteResult = { cursor: this.cursor(seq), duplicate };
    const message = command.type === 'message.start' ? state.messages.get(command.messageId) : undefined;
    if (message) {
      result.answer = {
        status: message.status,
        parts: message.parts,
        text: message.text,
        ...(message.blocks === undefined ? {} : { blocks: message.blocks }),
        ...(message.producerId === undefined ? {} : { producerId: message.producerId }),
        epoch: message.producerEpoch,
      };
    }
    return result;
  }

  /** Refuses a take-over whose start reply (the answer so far) could not reach its producer, before it fences anyone. */
  private requireClaimReplyFits(state: ConversationState, claim: Extract<LogEvent, { type: 'message.claimed' }>): void {
    const message = state.messages.get(claim.messageId);
    if (!message) return;
    const answer = { status: message.status, parts: message.parts, text: message.text, ...(message.blocks === undefined ? {} : { blocks: message.blocks }), producerId: claim.producerId, epoch: claim.epoch };
    // The claim's sequence is not known before it is written: measured with the longest a cursor can be.
    const refusal = startReplyRefusal(this.cursor(Number.MAX_SAFE_INTEGER), answer, this.stream.nc.info?.max_payload);
    if (refusal) throw refusal;
  }

  private cursor(seq: number): string {
    return formatCursor({ epoch: this.stream.epoch, seq });
  }
}
