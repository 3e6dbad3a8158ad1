import { MockLanguageModelV4 } from 'ai/test';

/** One part of a model's stream, as the AI SDK's provider interface defines it. */
type LanguageModelV4StreamPart = Awaited<ReturnType<MockLanguageModelV4['doStream']>>['stream'] extends ReadableStream<infer Part> ? Part : never;

export interface ScriptedModelOptions {
  /** Words of the answer's text. Default 120. */
  words?: number;
  /** Pace of the text, as a model would stream it. Default 30 words per second. */
  wordsPerSecond?: number;
}

/** What the scripted model did, for logs and tests: how far it got and whether its call was aborted. */
export interface ModelRun {
  emittedWords: number;
  aborted: boolean;
  ended: boolean;
}

/**
 * A language model that needs no API key: it thinks out loud (reasoning) and calls the `lookup`
 * tool in a first step, then, given the tool's result, streams a fixed answer word by word at a
 * model's pace. Built on the AI SDK's own
 * mock model, so `streamText` treats it like any provider's.
 */
export function createScriptedModel(options: ScriptedModelOptions = {}): { model: MockLanguageModelV4; runs: ModelRun[] } {
  const runs: ModelRun[] = [];
  const model = new MockLanguageModelV4({
    provider: 'seqline-example',
    modelId: 'scripted',
    doStream: async (call) => {
      const run: ModelRun = { emittedWords: 0, aborted: false, ended: false };
      runs.push(run);
      const prompt = promptText(call.prompt);
      const words = answerWords(options.words ?? 120);
      const delayMs = 1000 / (options.wordsPerSecond ?? 30);
      // As a real model does: the first step thinks and calls the tool; once the tool's result is in the prompt, the next one answers.
      const parts = call.prompt.some((message) => message.role === 'tool') ? answerParts(words) : toolCallParts(prompt);
      let next = 0;
      call.abortSignal?.addEventListener('abort', () => (run.aborted = true), { once: true });
      const stream = new ReadableStream<LanguageModelV4StreamPart>({
        async pull(controller) {
          const part = parts[next++];
          if (!part || call.abortSignal?.aborted) {
            run.ended = true;
            controller.close();
            return;
          }
          if (part.type === 'text-delta') {
            await new Promise((resolve) => setTimeout(resolve, delayMs));
            if (call.abortSignal?.aborted) {
              run.ended = true;
              controller.close();
              return;
            }
            run.emittedWords++;
          }
          controller.enqueue(part);
        },
        cancel() {
          run.ended = true;
        },
      });
      return { stream };
    },
  });
  return { model, runs };
}

function toolCallParts(prompt: string): LanguageModelV4StreamPart[] {
  const topic = prompt.split(/\s+/).slice(0, 6).join(' ');
  return [
    { type: 'stream-start', warnings: [] },
    { type: 'reasoning-start', id: 'r1' },
    { type: 'reasoning-delta', id: 'r1', delta: `The user asks: "${topic}". ` },
    { type: 'reasoning-delta', id: 'r1', delta: 'I will look it up first.' },
    { type: 'reasoning-end', id: 'r1' },
    { type: 'tool-call', toolCallId: 'call-1', toolName: 'lookup', input: JSON.stringify({ topic }) },
    { type: 'finish', finishReason: { unified: 'tool-calls', raw: 'tool_calls' }, usage: usage(0) },
  ];
}

function answerParts(words: string[]): LanguageModelV4StreamPart[] {
  return [
    { type: 'stream-start', warnings: [] },
    { type: 'text-start', id: 't1' },
    ...words.map((word, i): LanguageModelV4StreamPart => ({ type: 'text-delta', id: 't1', delta: i === 0 ? word : ` ${word}` })),
    { type: 'text-end', id: 't1' },
    { type: 'finish', finishReason: { unified: 'stop', raw: 'stop' }, usage: usage(words.length) },
  ];
}

function usage(outputTokens: number) {
  return { inputTokens: { total: 10, noCache: 10, cacheRead: 0, cacheWrite: 0 }, outputTokens: { total: outputTokens + 8, text: outputTokens, reasoning: 8 } };
}

/** The scripted answer: the same words for every prompt, a count in brackets every ten words so progress is easy to follow. */
export function answerWords(count: number): string[] {
  const sentence = 'Seqline keeps every answer in one ordered log, so a reload resumes where it stopped and each device sees the same text.'.split(' ');
  return Array.from({ length: count }, (_, i) => `${sentence[i % sentence.length]}${i % 10 === 9 ? ` (${i + 1})` : ''}`);
}

function promptText(prompt: { role: string; content: unknown }[]): string {
  const user = [...prompt].reverse().find((message) => message.role === 'user');
  if (!user || !Array.isArray(user.content)) return '';
  return (user.content as { type: string; text?: string }[]).map((part) => (part.type === 'text' ? (part.text ?? '') : '')).join('');
}
