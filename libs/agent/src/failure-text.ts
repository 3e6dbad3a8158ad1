import { MAX_FAILURE_CHARS, wellFormed } from '@seqline/protocol';

/**
 * A failure's message as the service takes it: at most `MAX_FAILURE_CHARS`, cut with an ellipsis,
 * with NUL and unpaired surrogates replaced. A model's error is often a provider's whole JSON
 * body; refused for its length or form, the fail would leave the answer streaming on every device
 * until the agent lease ran out.
 */
export function failureText(text: string): string {
  const clean = wellFormed(text);
  if (clean.length <= MAX_FAILURE_CHARS) return clean;
  let cut = MAX_FAILURE_CHARS - 1;
  // Not between the halves of a surrogate pair.
  if (/[\ud800-\udbff]/.test(clean[cut - 1]!)) cut--;
  return `${clean.slice(0, cut)}…`;
}
