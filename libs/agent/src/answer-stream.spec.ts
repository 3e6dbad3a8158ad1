import { jest } from '@jest/globals';
import type { AgentCommand, AnswerState } from '@seqline/protocol';
import { ErrorCode, SeqlineError } from '@seqline/protocol';
import { AnswerStream, type AcceptedReply, type CommandChannel } from './answer-stream.js';

/** A service that acknowledges each command only when the test says so. */
class SlowService implements CommandChannel {
  readonly received: AgentCommand[] = [];
  /** What the channel's pacer asks answers to wait between appends. */
  hold = 0;
  inFlight = 0;
  maxInFlight = 0;
  private waiting: Array<{ resolve: (reply: AcceptedReply) => void; reject: (error: Error) => void }> = [];

  send(_conversationId: string, command: AgentCommand): Promise<AcceptedReply> {
    this.received.push(command);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  /** Acknowledges the oldest command in flight. */
  async ack(): Promise<void> {
    const next = this.waiting.shift();
    if (!next) throw new Error('nothing in flight');
    this.inFlight--;
    next.resolve({ ok: true, cursor: `e-${this.received.length}`, duplicate: false });
    await flush();
  }

  async refuse(error: Error): Promise<void> {
    this.inFlight--;
    this.waiting.shift()!.reject(error);
    await flush();
  }

  holdMs(): number {
    return this.hold;
  }

  deltas(): string[] {
    return this.received.flatMap((command) => (command.type === 'message.append' ? [command.delta] : []));
  }
}

const flush = () => new Promise((resolve) => setImmediate(resolve));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const fresh: AnswerState = { status: 'streaming', parts: 0, text: '', epoch: 1 };
const open = (service: SlowService, maxDeltaChars = 1_000, state: AnswerState = fresh) =>
  new AnswerStream(service, { conversationId: 'c', messageId: 'm', maxDeltaChars }, Promise.resolve(state));

/** A fresh answer with `text` appended and in flight (not acknowledged yet). */
async function sending(text: string) {
  const service = new SlowService();
  const answer = open(service);
  await flush();
  answer.append(text);
  await flush();
  return { service, answer };
}

/** A fresh answer whose pacer holds `holdMs`: 'a' sent and acknowledged, and 'b', appended meanwhile, held back. */
async function holding(holdMs: number) {
  const service = new SlowService();
  service.hold = holdMs;
  const answer = open(service);
  await flush();
  answer.append('a');
  await flush();
  answer.append('b');
  await service.ack();
  return { service, answer };
}

describe('AnswerStream', () => {
  afterEach(() => jest.useRealTimers());

  it('under a slow acknowledgement sends every token exactly once, in order, with one append in flight', async () => {
    const service = new SlowService();
    const answer = open(service);
    const tokens = Array.from({ length: 500 }, (_, i) => `t${i} `);
    await flush();
    for (const [i, token] of tokens.entries()) {
      answer.append(token);
      // The service answers one command per 7 tokens produced: it is slower than the model.
      if (i % 7 === 6 && service.inFlight > 0) await service.ack();
    }
    const completed = answer.complete();
    await flush();
    while (service.inFlight > 0) await service.ack();
    await completed;

    expect(service.deltas().join('')).toBe(tokens.join(''));
    expect(service.maxInFlight).toBe(1);
    const parts = service.received.flatMap((command) => (command.type === 'message.append' ? [command.part] : []));
    expect(parts).toEqual(parts.map((_, i) => i + 1));
    // Tokens that waited behind an append went out together: far fewer events than tokens.
    expect(parts.length).toBeLessThanOrEqual(Math.ceil(tokens.length / 7) + 2);
    expect(service.received.at(-1)).toEqual({ type: 'message.complete', messageId: 'm', epoch: 1 });
  });

  it('sends nothing more once revoked during the pacer\'s hold, not even the part it was waiting to send', async () => {
    const { service, answer } = await holding(500);
    answer.revoke(new Error('its prompt handler made no progress'));
    await flush();
    expect(service.received.map((command) => command.type)).toEqual(['message.append']);
    await expect(answer.complete()).rejects.toThrow('its prompt handler made no progress');
    expect(service.deltas()).toEqual(['a']);
  });

  it('sends a token at once when nothing is in flight', async () => {
    const service = new SlowService();
    const answer = open(service);
    await flush();
    answer.append('hello');
    await flush();
    expect(service.deltas()).toEqual(['hello']);
    await service.ack();
    answer.append(' world');
    await flush();
    expect(service.deltas()).toEqual(['hello', ' world']);
  });

  it('waits out the pacer\'s hold between appends, sending what came meanwhile as one part; the end goes at once', async () => {
    // The hold's clock is the test's: a stalled event loop cannot end it early.
    jest.useFakeTimers({ doNotFake: ['setImmediate'] });
    const service = new SlowService();
    service.hold = 40;
    const answer = open(service);
    await flush();
    answer.append('a');
    await flush();
    expect(service.deltas()).toEqual(['a']);
    answer.append('b');
    await service.ack();
    answer.append('c');
    await jest.advanceTimersByTimeAsync(39);
    expect(service.deltas()).toEqual(['a']);
    await jest.advanceTimersByTimeAsync(1);
    await flush();
    expect(service.deltas()).toEqual(['a', 'bc']);
    answer.append('d');
    const completed = answer.complete();
    await service.ack();
    // What is left at the end is not held back.
    await flush();
    expect(service.deltas()).toEqual(['a', 'bc', 'd']);
    while (service.inFlight > 0) await service.ack();
    await completed;
    expect(service.maxInFlight).toBe(1);
  });

  it('ends a hold under way at once when the answer ends or text for another block arrives', async () => {
    const { service, answer } = await holding(5_000); // 'b' could still grow
    await sleep(10);
    expect(service.deltas()).toEqual(['a']);
    answer.append('{"q":1}', { type: 'tool', id: 'c', toolName: 'lookup' });
    await flush();
    expect(service.deltas()).toEqual(['a', 'b']);
    await service.ack(); // holding again: the tool's input could still grow
    await sleep(10);
    expect(service.deltas()).toEqual(['a', 'b']);
    answer.append('c');
    await flush();
    expect(service.deltas()).toEqual(['a', 'b', '{"q":1}']);
    await service.ack(); // holding for 'c'
    await sleep(10);
    expect(service.deltas()).toEqual(['a', 'b', '{"q":1}']);
    const completed = answer.complete();
    await flush();
    expect(service.deltas()).toEqual(['a', 'b', '{"q":1}', 'c']);
    while (service.inFlight > 0) await service.ack();
    await completed;
    expect(service.received.at(-1)).toEqual({ type: 'message.complete', messageId: 'm', epoch: 1 });
  });

  it('does not hold back an append that is full already', async () => {
    const service = new SlowService();
    service.hold = 1_000;
    const answer = open(service, 4);
    await flush();
    answer.append('ab');
    await flush();
    answer.append('cdefghij');
    await service.ack();
    // 'cdefghij' is two full slices: waiting could not make them larger.
    expect(service.deltas()).toEqual(['ab', 'cdef']);
    await service.ack();
    expect(service.deltas()).toEqual(['ab', 'cdef', 'ghij']);
    const completed = answer.complete();
    while (service.inFlight > 0) await service.ack();
    await completed;
  });

  it('holds appends until the start is accepted, then sends them as one part', async () => {
    const service = new SlowService();
    let accept!: (state: AnswerState) => void;
    const answer = new AnswerStream(service, { conversationId: 'c', messageId: 'm', maxDeltaChars: 1_000 }, new Promise<AnswerState>((resolve) => (accept = resolve)));
    answer.append('a');
    answer.append('b');
    await flush();
    expect(service.received).toEqual([]);
    accept(fresh);
    await flush();
    expect(service.deltas()).toEqual(['ab']);
  });

  it('goes on from where an earlier producer stopped: the next part, with its own epoch', async () => {
    const service = new SlowService();
    const answer = open(service, 1_000, { status: 'streaming', parts: 4, text: 'abcd', producerId: 'me', epoch: 3 });
    expect((await answer.ready).text).toBe('abcd');
    answer.append('e');
    const done = answer.complete();
    await flush();
    while (service.inFlight > 0) await service.ack();
    await done;
    expect(service.received).toEqual([
      { type: 'message.append', messageId: 'm', part: 5, delta: 'e', epoch: 3 },
      { type: 'message.complete', messageId: 'm', epoch: 3 },
    ]);
  });

  it('sends nothing for an answer that was already finished, and completes quietly', async () => {
    const service = new SlowService();
    const answer = open(service, 1_000, { status: 'complete', parts: 2, text: 'ab', epoch: 1 });
    await answer.ready;
    answer.append('x');
    await answer.complete();
    expect(answer.signal.aborted).toBe(true);
    expect(service.received).toEqual([]);
  });

  it('stops when fenced: the signal says another producer took over, complete() rejects with FENCED', async () => {
    const { service, answer } = await sending('a');
    await service.refuse(new SeqlineError(ErrorCode.Fenced, 'message m is written by another producer now (epoch 2)'));
    await expect(answer.complete()).rejects.toMatchObject({ code: 'FENCED' });
    expect((answer.signal.reason as Error).message).toBe('another producer took the answer over');
  });

  it('splits pending text at the delta limit, still one append in flight', async () => {
    const service = new SlowService();
    const answer = open(service, 4);
    answer.append('abcdefghij');
    await flush();
    const done = answer.complete();
    await flush();
    while (service.inFlight > 0) await service.ack();
    await done;
    expect(service.deltas()).toEqual(['abcd', 'efgh', 'ij']);
    expect(service.maxInFlight).toBe(1);
  });

  it('never splits a surrogate pair, and keeps each append within a command frame however its text escapes', async () => {
    const service = new SlowService();
    const answer = open(service, 3);
    answer.append('ab😀cd😀');
    await flush();
    let done = answer.complete();
    await flush();
    while (service.inFlight > 0) await service.ack();
    await done;
    expect(service.deltas()).toEqual(['ab', '😀c', 'd😀']);

    // 16,384 control characters are 98,304 bytes as JSON, past the 64 KiB frame: sent in slices that fit.
    const escaped = new SlowService();
    const big = open(escaped, 16_384);
    big.append('\u0001'.repeat(16_384));
    await flush();
    done = big.complete();
    await flush();
    while (escaped.inFlight > 0) await escaped.ack();
    await done;
    expect(escaped.deltas().join('')).toBe('\u0001'.repeat(16_384));
    expect(escaped.deltas().length).toBeGreaterThan(1);
    for (const command of escaped.received) expect(Buffer.byteLength(JSON.stringify(command))).toBeLessThanOrEqual(64 * 1024);

    // A tool call whose id and name (128 characters each, as allowed) escape to 768 bytes each: its input's appends fit too.
    const named = new SlowService();
    const tool = open(named, 16_384);
    const block = { type: 'tool' as const, id: '\u0001'.repeat(128), toolName: '\u0002'.repeat(128), field: 'input' as const };
    const input = '\u0001'.repeat(10_751);
    tool.append(input, block);
    await flush();
    done = tool.complete();
    await flush();
    while (named.inFlight > 0) await named.ack();
    await done;
    expect(named.deltas().join('')).toBe(input);
    for (const command of named.received) expect(Buffer.byteLength(JSON.stringify(command))).toBeLessThanOrEqual(64 * 1024);
  });

  it('keeps the first half of an emoji split across tokens until its other half comes, and sends no unpaired half', async () => {
    const service = new SlowService();
    const answer = open(service);
    await flush();
    // Nothing in flight: the token would go at once, but its last unit is half of 😀.
    answer.append('ab\ud83d');
    await flush();
    expect(service.deltas()).toEqual(['ab']);
    await service.ack();
    // A lone half, nothing in flight: it waits, nothing is sent.
    expect(service.deltas()).toEqual(['ab']);
    answer.append('\ude00c\ud83d');
    await flush();
    expect(service.deltas()).toEqual(['ab', '😀c']);
    await service.ack();
    answer.append('\ude00');
    await flush();
    await service.ack();
    // One that is never completed (the answer ends), and a NUL, are not text: sent as U+FFFD instead of being refused.
    answer.append('d\u0000e\ud83d');
    const done = answer.complete();
    await flush();
    while (service.inFlight > 0) await service.ack();
    await done;
    expect(service.deltas()).toEqual(['ab', '😀c', '😀', 'd\ufffde\ufffd']);
    expect(service.received.at(-1)).toMatchObject({ type: 'message.complete' });
  });

  it('sends the first half of a pair as U+FFFD when text for another block follows it', async () => {
    const service = new SlowService();
    const answer = open(service);
    await flush();
    answer.append('x');
    await flush();
    answer.append('y\ud83d');
    answer.append('{}', { type: 'tool', id: 't1', toolName: 'weather' });
    await service.ack();
    await service.ack();
    expect(service.deltas()).toEqual(['x', 'y\ufffd', '{}']);
  });

  it('sends no fail for an answer whose start was refused: it is not this producer\'s to end', async () => {
    // Another agent answers the same prompt under the same id: failing "our" answer would fail theirs.
    for (const refusal of [
      new SeqlineError(ErrorCode.MessageExists, 'message m exists, written by another agent'),
      new SeqlineError(ErrorCode.MessageTooLarge, 'the answer does not fit a reply'),
    ]) {
      const service = new SlowService();
      const answer = new AnswerStream(service, { conversationId: 'c', messageId: 'm', maxDeltaChars: 1_000 }, Promise.reject(refusal));
      answer.append('a');
      await expect(answer.fail('model error')).rejects.toBe(refusal);
      expect(service.received).toEqual([]);
      expect(answer.signal.aborted).toBe(true);
    }
  }, 5_000);

  it('after a part refused for what it held, fail() still ends the open answer, with its epoch', async () => {
    const service = new SlowService();
    const answer = open(service, 1_000, { status: 'streaming', parts: 0, text: '', epoch: 3 });
    await flush();
    answer.append('a');
    await flush();
    await service.refuse(new SeqlineError(ErrorCode.MessageTooLarge, 'the answer would exceed 100 characters'));
    const failed = answer.fail('too long');
    await flush();
    await service.ack();
    await failed;
    expect(service.received.map((command) => [command.type, 'epoch' in command ? command.epoch : undefined])).toEqual([
      ['message.append', 3],
      ['message.fail', 3],
    ]);
  });

  it('after complete() stopped on a part refused for what it held, fail() still ends the open answer', async () => {
    const service = new SlowService();
    const answer = open(service, 1_000, { status: 'streaming', parts: 0, text: '', epoch: 2 });
    await flush();
    answer.append('a');
    // The model is done while its last part is in flight: complete() waits behind it.
    const completed = answer.complete();
    await flush();
    const refusal = new SeqlineError(ErrorCode.MessageTooLarge, 'the answer would exceed 100 characters');
    await service.refuse(refusal);
    await expect(completed).rejects.toBe(refusal);
    const failed = answer.fail(refusal.message);
    await flush();
    await service.ack();
    await failed;
    expect(service.received.map((command) => [command.type, 'epoch' in command ? command.epoch : undefined, 'error' in command ? command.error : undefined])).toEqual([
      ['message.append', 2, undefined],
      ['message.fail', 2, 'the answer would exceed 100 characters'],
    ]);
  });

  it('stops at a refusal: complete() rejects with it, the signal aborts, and nothing more is sent', async () => {
    const { service, answer } = await sending('a');
    answer.append('b');
    const refusal = new SeqlineError(ErrorCode.MessageFinished, 'message m is already aborted');
    await service.refuse(refusal);
    answer.append('c');
    await expect(answer.complete()).rejects.toBe(refusal);
    expect(answer.signal.aborted).toBe(true);
    expect(service.received).toHaveLength(1);
    // A refusal without the status (an older service) says nothing of how the answer ended.
    expect(answer.endedAs).toBeUndefined();
  });

  it.each([
    ['aborted', 'aborted'],
    ['failed', 'failed'],
    ['complete', undefined],
  ] as const)('learns how the answer ended from a MESSAGE_FINISHED refusal saying %s (the notice missed)', async (messageStatus, endedAs) => {
    const { service, answer } = await sending('a');
    await service.refuse(new SeqlineError(ErrorCode.MessageFinished, `message m is already ${messageStatus}`, messageStatus));
    expect(answer.signal.aborted).toBe(true);
    expect(answer.endedAs).toBe(endedAs);
  });

  it('takes no end state from a refusal of another code, even one naming a status', async () => {
    const { service, answer } = await sending('a');
    await service.refuse(new SeqlineError(ErrorCode.Fenced, 'another producer took the answer over', 'failed'));
    expect(answer.signal.aborted).toBe(true);
    expect(answer.endedAs).toBeUndefined();
  });

  it('coalesces per block: one append per run of one block, a tool output keeps its latest value whole', async () => {
    const service = new SlowService();
    const answer = open(service, 4);
    await flush();
    answer.append('Th', { type: 'reasoning', id: 'r' });
    await flush(); // in flight: everything below waits for its acknowledgement
    answer.append('ink', { type: 'reasoning', id: 'r' });
    answer.append('ing', { type: 'reasoning', id: 'r' });
    answer.append('{"q":1}', { type: 'tool', id: 'c', toolName: 'lookup' });
    answer.append('"old"', { type: 'tool', id: 'c', toolName: 'lookup', field: 'output' });
    answer.append('"a longer output"', { type: 'tool', id: 'c', toolName: 'lookup', field: 'output' });
    answer.append('Hi', { type: 'text', id: 't' });
    answer.append('!');
    const completed = answer.complete();
    await flush();
    while (service.inFlight > 0) await service.ack();
    await completed;
    const appends = service.received.flatMap((command) => (command.type === 'message.append' ? [{ part: command.part, delta: command.delta, block: command.block }] : []));
    expect(appends).toEqual([
      { part: 1, delta: 'Th', block: { type: 'reasoning', id: 'r' } },
      { part: 2, delta: 'inki', block: { type: 'reasoning', id: 'r' } },
      { part: 3, delta: 'ng', block: { type: 'reasoning', id: 'r' } },
      { part: 4, delta: '{"q"', block: { type: 'tool', id: 'c', toolName: 'lookup' } },
      { part: 5, delta: ':1}', block: { type: 'tool', id: 'c', toolName: 'lookup' } },
      // Set whole, never sliced, and only the latest value.
      { part: 6, delta: '"a longer output"', block: { type: 'tool', id: 'c', toolName: 'lookup', field: 'output' } },
      { part: 7, delta: 'Hi', block: { type: 'text', id: 't' } },
      { part: 8, delta: '!', block: undefined },
    ]);
  }, 10_000);
});

describe('AnswerStream failing', () => {
  it('cuts a failure message to what the service takes (1,024 characters, no NUL or unpaired surrogate), so the fail is not refused and the answer ends', async () => {
    const service = new SlowService();
    const answer = open(service);
    await flush();
    const failing = answer.fail(`${'provider said: '.padEnd(2_000, 'x')}`);
    await flush();
    const sent = service.received.at(-1) as Extract<AgentCommand, { type: 'message.fail' }>;
    expect(sent.error.length).toBe(1_024);
    expect(sent.error.endsWith('x…')).toBe(true);
    await service.ack();
    await failing;

    const other = new SlowService();
    const second = open(other);
    await flush();
    const cleaned = second.fail('bad \u0000 byte and half \ud83d an emoji, whole \ud83d\ude00');
    await flush();
    expect((other.received.at(-1) as Extract<AgentCommand, { type: 'message.fail' }>).error).toBe('bad \ufffd byte and half \ufffd an emoji, whole \ud83d\ude00');
    await other.ack();
    await cleaned;
  });

  it('sends a later fail after an earlier one the service refused for what it held, instead of "answer already ended"', async () => {
    const service = new SlowService();
    const answer = open(service);
    await flush();
    const first = answer.fail('first');
    await flush();
    await service.refuse(new SeqlineError(ErrorCode.ValidationFailed, 'error: too long'));
    // The same refused end is tried once more; refused again, fail() rejects with it.
    await service.refuse(new SeqlineError(ErrorCode.ValidationFailed, 'error: too long'));
    await expect(first).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    const second = answer.fail('short');
    await flush();
    expect(service.received.at(-1)).toEqual({ type: 'message.fail', messageId: 'm', error: 'short', epoch: 1 });
    await service.ack();
    await second;
  });
});

