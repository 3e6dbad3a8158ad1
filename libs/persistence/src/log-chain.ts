import type { LogEntry } from '@seqline/streams';
import type { LogHole } from './message.repository.js';

export interface ChainWalk {
  /** The events to apply, in order. */
  apply: LogEntry[];
  /** What was stepped over: forks, undecodable events, and (strict walks) events expired before the first. */
  holes: LogHole[];
  /** The last event applied or stepped over: the watermark once `apply` and `holes` are written. */
  position: number;
  /** A strict walk met an event naming a predecessor it had not got to; it stopped before that event. */
  broken: boolean;
}

export interface ChainWalkOptions {
  /**
   * Strict (the persister): an event naming a predecessor after `position` breaks the walk,
   * unless it is the first event and its predecessor expired from the log (before `firstSeq`):
   * then the expired events are a `retention` hole. Lenient (a rebuild of a log whose start
   * expired): such an event is applied.
   */
  strict: boolean;
  firstSeq?: number;
}

/**
 * Where an event stands against a conversation's chain applied up to `position`: already `seen`
 * (a redelivery), the `next` one, a `fork` (it names a predecessor the chain has gone past: a
 * second event written after the same one), or `ahead` (it names one not applied yet).
 */
export type ChainStep = 'seen' | 'next' | 'fork' | 'ahead';

export function chainStep(position: number, entry: Pick<LogEntry, 'seq' | 'prev'>): ChainStep {
  if (entry.seq <= position) return 'seen';
  if (entry.prev < position) return 'fork';
  return entry.prev > position ? 'ahead' : 'next';
}

/**
 * Follows a conversation's `prev` chain from `position` over `entries` (ascending) and the
 * sequences of `undecodable` events among them, by the rules every reader of Postgres relies
 * on: an event right after the position applies; one naming a predecessor the chain has already
 * gone past forks the conversation and is stepped over, as is an undecodable one; later events
 * chain on from either. The persister and `seqline repair` both walk with it, so a repaired
 * conversation reads as a persisted one.
 */
export function walkChain(conversationId: string, epoch: string, position: number, entries: LogEntry[], undecodable: number[], options: ChainWalkOptions): ChainWalk {
  const walk: ChainWalk = { apply: [], holes: [], position, broken: false };
  const hole = (untilSeq: number, reason: LogHole['reason']) => walk.holes.push({ conversationId, epoch, afterSeq: walk.position, untilSeq, reason });
  let next = 0;
  const stepOverUndecodable = (before: number) => {
    for (; next < undecodable.length && undecodable[next]! < before; next++) {
      if (undecodable[next]! <= walk.position) continue;
      hole(undecodable[next]!, 'undecodable');
      walk.position = undecodable[next]!;
    }
  };
  for (const entry of entries) {
    stepOverUndecodable(entry.seq);
    const step = chainStep(walk.position, entry);
    switch (step) {
      case 'seen':
        continue;
      case 'fork':
        hole(entry.seq, 'fork');
        walk.position = entry.seq;
        continue;
      case 'ahead':
        if (options.strict) {
          const first = walk.apply.length === 0 && walk.holes.length === 0;
          if (!first || options.firstSeq === undefined || entry.prev >= options.firstSeq) {
            walk.broken = true;
            return walk;
          }
          hole(entry.prev, 'retention');
          walk.position = entry.prev;
        }
        break;
      case 'next':
        break;
      default: {
        const unreachable: never = step;
        throw new Error(`unknown chain step ${String(unreachable)}`);
      }
    }
    walk.apply.push(entry);
    walk.position = entry.seq;
  }
  stepOverUndecodable(Infinity);
  return walk;
}
