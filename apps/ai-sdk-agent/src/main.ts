import { SeqlineAgent } from '@seqline/agent';
import { createLogger } from '@seqline/config';
import type { LanguageModel } from 'ai';
import { answerPrompt } from './answer-prompt.js';
import { createScriptedModel } from './scripted-model.js';

/**
 * An agent written with the AI SDK: `streamText` answers every prompt and the answer is
 * published into Seqline. With AI_GATEWAY_API_KEY set it calls AI_MODEL (default
 * `openai/gpt-5-mini`) through the AI Gateway; without a key, a scripted model that needs none.
 * Settings: NATS_URL, SEQLINE_PREFIX, SEQLINE_STREAM, NATS_USER, NATS_PASSWORD, DEMO_WORDS_PER_SECOND.
 */
const logger = createLogger(process.env.LOG_LEVEL ?? 'info', 'seqline-ai-sdk-agent');
const model: LanguageModel = process.env.AI_GATEWAY_API_KEY
  ? (process.env.AI_MODEL ?? 'openai/gpt-5-mini')
  : createScriptedModel({ wordsPerSecond: Number(process.env.DEMO_WORDS_PER_SECOND ?? 20) }).model;

const agent = await SeqlineAgent.connect({
  servers: process.env.NATS_URL ?? 'nats://127.0.0.1:4222',
  agentId: 'ai-sdk-agent',
  prefix: process.env.SEQLINE_PREFIX,
  stream: process.env.SEQLINE_STREAM,
  user: process.env.NATS_USER,
  password: process.env.NATS_PASSWORD,
});

await agent.onPrompt(async (prompt) => {
  logger.info({ conversationId: prompt.conversationId, messageId: prompt.messageId }, 'answering');
  const outcome = await answerPrompt(agent, prompt, model);
  logger.info({ conversationId: prompt.conversationId, messageId: prompt.messageId, outcome }, 'answer ended');
});
logger.info({ model: typeof model === 'string' ? model : 'scripted (no AI_GATEWAY_API_KEY)' }, 'AI SDK agent waiting for prompts');

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void agent.close().then(() => process.exit(0)));
}
