import { DEFAULT_LIMITS } from './limits.js';
import { utf8Length } from './utf8.js';

/** What a delta may take of a command frame of `frameBytes`, leaving room for the rest of the command. */
export const deltaBytesFor = (frameBytes: number): number => frameBytes - 1_024;

/**
 * How much of `text` the next append takes: at most `maxChars`, no more than fits in a command
 * frame once JSON-encoded (text full of characters JSON escapes can pass it well before the
 * character limit, and the service refuses such a frame for good), and never half of a surrogate
 * pair.
 */
export function deltaLength(text: string, maxChars: number, maxBytes = deltaBytesFor(DEFAULT_LIMITS.frameBytes)): number {
  let length = Math.min(text.length, maxChars);
  // No character takes more than six bytes in JSON (`\u0001`): short deltas need no measuring.
  while (length > 1 && length * 6 > maxBytes && utf8Length(JSON.stringify(text.slice(0, length))) > maxBytes) length = Math.ceil(length / 2);
  const code = text.charCodeAt(length - 1);
  if (length < text.length && code >= 0xd800 && code <= 0xdbff) length = length > 1 ? length - 1 : 2;
  return length;
}
