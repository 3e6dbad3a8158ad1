import { wellFormed } from '@seqline/protocol';
import { continuation, demoAnswer } from './answer-text.js';

describe('demoAnswer', () => {
  it('quotes whole characters of a long prompt, so an answer taken over goes on from what was streamed', () => {
    // An emoji across the 200th UTF-16 unit.
    const prompt = 'a'.repeat(199) + '😀 and more';
    const full = demoAnswer(prompt, 400);
    expect(full).toBe(wellFormed(full));
    expect(full.startsWith(`You asked: "${'a'.repeat(199)}😀".`)).toBe(true);
    // What a first run streamed (the agent SDK sends text well formed), then what a second run adds.
    const written = full.slice(0, 230);
    expect(written + continuation(full, written)).toBe(full);
  });
});
