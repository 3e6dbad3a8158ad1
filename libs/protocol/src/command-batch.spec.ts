import { encodeCommandBatch, MAX_BATCH_COMMANDS, splitCommandBatch } from './command-batch.js';
import { SeqlineError } from './errors.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const command = (json: unknown) => encoder.encode(JSON.stringify(json));

describe('command batches', () => {
  it('are one line per command, conversation id and command JSON, and split back to the same commands', () => {
    const appendA = { type: 'message.append', messageId: 'm-1', part: 3, delta: 'two\nlines and a space' };
    const completeB = { type: 'message.complete', messageId: 'm-2', epoch: 2 };
    const bytes = encodeCommandBatch([
      { conversationId: 'conv-a', data: command(appendA) },
      { conversationId: 'conv_b', data: command(completeB) },
    ]);
    expect(decoder.decode(bytes)).toBe(`conv-a ${JSON.stringify(appendA)}\nconv_b ${JSON.stringify(completeB)}\n`);
    const lines = splitCommandBatch(bytes);
    expect(lines.map((line) => (line instanceof SeqlineError ? line : { conversationId: line.conversationId, json: JSON.parse(decoder.decode(line.data)) as unknown }))).toEqual([
      { conversationId: 'conv-a', json: appendA },
      { conversationId: 'conv_b', json: completeB },
    ]);
  });

  it('refuses a line without a conversation id in its own place, and takes blank lines and a missing last line break', () => {
    const lines = splitCommandBatch(encoder.encode('a {"x":1}\n\nno-space\nbad.id {"x":2}\n\nb {"x":3}'));
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatchObject({ conversationId: 'a' });
    expect(lines[1]).toEqual(new SeqlineError('BAD_FRAME', 'command 2 of the batch does not start with a conversation id and a space'));
    expect((lines[1] as SeqlineError).code).toBe('BAD_FRAME');
    expect((lines[2] as SeqlineError).code).toBe('BAD_FRAME');
    expect((lines[2] as SeqlineError).message).toBe('command 3 of the batch does not start with a conversation id and a space');
    expect(decoder.decode((lines[3] as { data: Uint8Array }).data)).toBe('{"x":3}');
  });

  it('refuses an empty batch and one of more than the most commands as a whole', () => {
    expect(() => splitCommandBatch(encoder.encode('\n\n'))).toThrow(new SeqlineError('VALIDATION_FAILED', 'the batch holds no command'));
    const most = Array.from({ length: MAX_BATCH_COMMANDS }, () => 'c {}').join('\n');
    expect(splitCommandBatch(encoder.encode(most))).toHaveLength(MAX_BATCH_COMMANDS);
    const tooMany = `${most}\nc {}`;
    expect(() => splitCommandBatch(encoder.encode(tooMany))).toThrow(`a batch holds at most ${MAX_BATCH_COMMANDS} commands`);
  });
});
