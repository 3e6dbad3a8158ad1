import { SeqlineAgent } from '@seqline/agent';
import { createLogger } from '@seqline/config';
import { continuation, demoAnswer, tokenize } from './answer-text.js';

/**
 * A simulated LLM: answers every user message by streaming a long text at a realistic token
 * rate. Settings: NATS_URL, SEQLINE_PREFIX, DEMO_TOKENS (per answer), DEMO_TOKENS_PER_SECOND.
 */
const logger = createLogger(process.env.LOG_LEVEL ?? 'info', 'seqline-demo-agent');
const tokensPerAnswer = Number(process.env.DEMO_TOKENS ?? 400);
const tokensPerSecond = Number(process.env.DEMO_TOKENS_PER_SECOND ?? 40);

const agent = await SeqlineAgent.connect({
  servers: process.env.NATS_URL ?? 'nats://127.0.0.1:4222',
  agentId: 'demo-agent',
  prefix: process.env.SEQLINE_PREFIX,
  stream: process.env.SEQLINE_STREAM,
  user: process.env.NATS_USER,
  password: process.env.NATS_PASSWORD,
});

await agent.onPrompt(async (prompt) => {
  // One answer id per prompt: a prompt redelivered after an agent died continues that agent's answer.
  const answer = agent.startMessage(prompt.conversationId, { messageId: `${prompt.messageId}-answer` });
  const { status, text } = await answer.ready;
  if (status !== 'streaming') {
    logger.info({ messageId: answer.messageId, status }, 'answered before');
    return;
  }
  // A model would be given `text` as the start of its answer; the demo's answer is fixed, so it skips what was written.
  const rest = continuation(demoAnswer(prompt.text, tokensPerAnswer), text);
  logger.info({ conversationId: prompt.conversationId, messageId: answer.messageId, resumedAt: text.length }, 'answering');
  for (const token of tokenize(rest)) {
    if (answer.signal.aborted) {
      // Cancelled by a device, taken over by another agent, or refused: the SDK settles the prompt by which.
      logger.info({ messageId: answer.messageId, reason: (answer.signal.reason as Error | undefined)?.message }, 'answer stopped');
      return;
    }
    answer.append(token);
    await new Promise((resolve) => setTimeout(resolve, 1000 / tokensPerSecond));
  }
  await answer.complete();
  logger.info({ messageId: answer.messageId }, 'answer complete');
});
logger.info('demo agent waiting for prompts');

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void agent.close().then(() => process.exit(0)));
}
