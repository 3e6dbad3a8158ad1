import type { AgentCommand } from '@seqline/protocol';
import { ErrorCode, SeqlineError } from '@seqline/protocol';
import { AnswerStream, type CommandChannel } from './answer-stream.js';

/** A service that acknowledges each command only when the test says so. */
class SlowService implements CommandChannel {
  readonly received: AgentCommand[] = [];
  inFlight = 0;
  maxInFlight = 0;
  private waiting: Array<{ resolve: (cursor: string) => void; reject: (error: Error) => void }> = [];

  send(_conversationId: string, command: AgentCommand): Promise<string> {
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
    next.resolve(`e-${this.received.length}`);
    await flush();
  }

  async refuse(error: Error): Promise<void> {
    this.inFlight--;
    this.waiting.shift()!.reject(error);
    await flush();
  }

  deltas(): string[] {
    return this.received.flatMap((command) => (command.type === 'message.append' ? [command.delta] : []));
  }
}

const flush = () => new Promise((resolve) => setImmediate(resolve));
const open = (service: SlowService, maxDeltaChars = 1_000) => new AnswerStream(service, { conversationId: 'c', messageId: 'm', maxDeltaChars }, Promise.resolve());

describe('AnswerStream', () => {
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
    expect(service.received.at(-1)).toEqual({ type: 'message.complete', messageId: 'm' });
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

  it('holds appends until the start is accepted, then sends them as one part', async () => {
    const service = new SlowService();
    let accept!: () => void;
    const answer = new AnswerStream(service, { conversationId: 'c', messageId: 'm', maxDeltaChars: 1_000 }, new Promise<void>((resolve) => (accept = resolve)));
    answer.append('a');
    answer.append('b');
    await flush();
    expect(service.received).toEqual([]);
    accept();
    await flush();
    expect(service.deltas()).toEqual(['ab']);
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

  it('stops at a refusal: complete() rejects with it, the signal aborts, and nothing more is sent', async () => {
    const service = new SlowService();
    const answer = open(service);
    await flush();
    answer.append('a');
    await flush();
    answer.append('b');
    const refusal = new SeqlineError(ErrorCode.MessageFinished, 'message m is already aborted');
    await service.refuse(refusal);
    answer.append('c');
    await expect(answer.complete()).rejects.toBe(refusal);
    expect(answer.signal.aborted).toBe(true);
    expect(service.received).toHaveLength(1);
  });
});
