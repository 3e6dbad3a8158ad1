import { publishToSeqline, type PublishOutcome } from '@seqline/ai-sdk';
import type { SeqlineAgent } from '@seqline/agent';
import type { Prompt } from '@seqline/protocol';
import { stepCountIs, streamText, tool, type LanguageModel } from 'ai';
import { z } from 'zod';

/** The example's one tool: what a real agent would fetch from a search index or an API. */
export const lookup = tool({
  description: 'Looks a topic up in the knowledge base',
  inputSchema: z.object({ topic: z.string() }),
  execute: async ({ topic }) => ({ topic, facts: ['answers are kept in an ordered log', 'any device can resume from its cursor'] }),
});

/**
 * Answers one prompt with `streamText`, published into the conversation by `publishToSeqline`:
 * reasoning, the tool call and the text reach every device; a device's cancel aborts the model call.
 */
export async function answerPrompt(agent: SeqlineAgent, prompt: Prompt, model: LanguageModel): Promise<PublishOutcome | 'answered-before'> {
  // One answer id per prompt: a prompt redelivered after an agent died takes that answer over.
  const answer = agent.startMessage(prompt.conversationId, { messageId: `${prompt.messageId}-answer` });
  const { status, parts } = await answer.ready;
  if (status !== 'streaming') return 'answered-before';
  // A model call cannot go on where another one stopped: rather than repeat the start, end it failed.
  if (parts > 0) {
    await answer.fail('the agent stopped mid-answer; ask again');
    return 'failed';
  }
  return publishToSeqline(answer, (abortSignal) => streamText({ model, prompt: prompt.text, tools: { lookup }, stopWhen: stepCountIs(5), abortSignal }));
}
