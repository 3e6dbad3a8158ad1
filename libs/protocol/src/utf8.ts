/** A string's length in UTF-8 bytes, without `TextEncoder` (older React Native engines lack it). */
export function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    // Below U+0800 two bytes, above three; a surrogate pair (two units) four.
    if (code >= 0x80) bytes += code >= 0x800 && (code < 0xd800 || code > 0xdfff) ? 2 : 1;
  }
  return bytes;
}
