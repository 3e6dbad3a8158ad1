import { wellFormed } from '@seqline/protocol';

const PARAGRAPHS = [
  'Seqline keeps every conversation as an ordered log on NATS JetStream, so an answer that is being streamed does not live in any one connection.',
  'When a phone drops off the network halfway through an answer, nothing is lost: the device remembers the cursor of the last event it applied and asks for everything after it when it comes back.',
  'The server replays the events the device missed from the log and then carries on with the live stream from the very same consumer, which is why there is no seam, no gap and no duplicate.',
  'A second device that joins late gets a snapshot of the conversation as Postgres holds it, together with the cursor that snapshot is consistent with, and then the live tail.',
  'Postgres holds one row per message. Appends are folded into that row in small batches, so a two thousand token answer costs a handful of writes rather than two thousand.',
  'Agents publish through NATS requests that are idempotent: every append carries its part number, so a retry after a timeout is recognised and applied once.',
];

/** Splits text into word-sized tokens, keeping the spaces, as a language model would stream them. */
export function tokenize(text: string): string[] {
  return text.match(/\s*\S+/g) ?? [];
}

/** A deterministic, long answer to a prompt, for demos and benchmarks. */
export function demoAnswer(prompt: string, tokens: number): string {
  // Whole characters, and well formed: an emoji cut in half would be sent as U+FFFD, and an answer
  // taken over after a restart would no longer start with what the first run streamed.
  const words: string[] = [`You asked: "${wellFormed(Array.from(prompt).slice(0, 200).join(''))}".`];
  let count = tokenize(words[0]!).length;
  for (let i = 0; count < tokens; i++) {
    const paragraph = PARAGRAPHS[i % PARAGRAPHS.length]!;
    const parts = tokenize(paragraph);
    const take = parts.slice(0, tokens - count);
    words.push((i % PARAGRAPHS.length === 0 ? '\n\n' : ' ') + take.join('').trimStart());
    count += take.length;
  }
  return words.join('');
}

/** What is left of `full` after `written`, the text an earlier run already streamed (none if it went elsewhere). */
export function continuation(full: string, written: string): string {
  return full.startsWith(written) ? full.slice(written.length) : '';
}
