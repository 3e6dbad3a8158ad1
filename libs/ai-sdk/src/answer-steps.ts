import type { MessageBlock } from '@seqline/protocol';

/** `publishToSeqline` names text and reasoning blocks `<step>-<id>`: the step a model call was in. */
const STEP_PREFIX = /^(0|[1-9]\d{0,8})-/;
/**
 * A step further on than this is no step: an agent of its own naming a block `2024-report`. Steps
 * without text or reasoning (tool calls alone) are skipped numbers, so the bound is generous.
 */
const MAX_STEP_JUMP = 1_000;

/**
 * Where the answer's steps (one model call each, in an answer with tools) start: the indexes of
 * the blocks before which the AI SDK puts a `step-start` part. The first block starts the first
 * step; a text or reasoning block of a later step than every one before it starts the next.
 * Tool and data blocks carry no step and stay in the step they follow, where the model made
 * them. Without these parts `useChat` takes the whole answer for one step, so an answer that
 * ran a tool and then wrote its text looks to `lastAssistantMessageIsCompleteWithToolCalls` like
 * a call waiting for the page to go on, and is sent again.
 *
 * Blocks only grow and keep their order, so a start found once stays where it is.
 */
export function stepStarts(blocks: readonly MessageBlock[]): Set<number> {
  const starts = new Set<number>();
  if (blocks.length > 0) starts.add(0);
  let step = 0;
  blocks.forEach((block, index) => {
    const of = stepOf(block);
    if (of === undefined || of <= step || of - step > MAX_STEP_JUMP) return;
    step = of;
    if (index > 0) starts.add(index);
  });
  return starts;
}

function stepOf(block: MessageBlock): number | undefined {
  if (block.type !== 'text' && block.type !== 'reasoning') return undefined;
  const match = STEP_PREFIX.exec(block.id);
  return match ? Number(match[1]) : undefined;
}

/** The index of the block the last step starts at (0 for an answer of one step or none). */
export function lastStepStart(starts: ReadonlySet<number>): number {
  let last = 0;
  for (const start of starts) last = Math.max(last, start);
  return last;
}
