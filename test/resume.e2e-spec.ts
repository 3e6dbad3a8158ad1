import { jest } from '@jest/globals';
import { parseCursor } from '@seqline/protocol';
import { createConversation, eventually, http, metric, seededRandom, testSeed, useSeqline, WsDevice } from '@seqline/testing';

const TOKENS = 2_000;
const tokens = Array.from({ length: TOKENS }, (_, i) => ` tok${i}`);
const expected = tokens.join('');

const SEED = testSeed();

describe(`an answer streamed to devices that drop, resume and join late (TEST_SEED=${SEED})`, () => {
  const seqline = useSeqline();

  it('ends with exactly the agent text on every device, no event twice, cursors increasing', async () => {
    const { server } = seqline;
    const agent = await seqline.agent('writer');
    await createConversation(server.url, 'c-resume');
    const a = new WsDevice(server.url, 'c-resume');
    const b = new WsDevice(server.url, 'c-resume');
    await a.connect();
    await b.connect();

    const answer = agent.startMessage('c-resume', { messageId: 'answer-1' });
    let eventsBeforeDrop = -1;
    const dropAt = 300 + Math.floor(seededRandom(SEED)() * 1_200);
    for (let i = 0; i < TOKENS; i++) {
      answer.append(tokens[i]!);
      if (i === dropAt) {
        // Mid-answer for B too: it has had part of the answer (a slow machine may not have delivered any yet).
        await b.until(() => b.events.length > 0);
        eventsBeforeDrop = b.events.length;
        b.drop();
      }
      if (i === dropAt + 200) await b.connect();
      if (i % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    }
    await answer.complete();

    const done = (device: WsDevice) => () => device.messages.get('answer-1')?.status === 'complete';
    await a.until(done(a));
    await b.until(done(b));
    const c = new WsDevice(server.url, 'c-resume');
    await c.connect();

    for (const device of [a, b, c]) {
      expect(device.violations).toEqual([]);
      expect(device.text('answer-1')).toBe(expected);
      expect(device.messages.get('answer-1')?.status).toBe('complete');
      const seqs = device.events.map((event) => parseCursor(event.cursor)!.seq);
      expect(new Set(seqs).size).toBe(seqs.length);
      expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    }
    // B started from a snapshot, then resumed from its cursor after the drop instead of reloading.
    expect(b.frames.filter((frame) => frame.type === 'snapshot')).toHaveLength(1);
    expect(b.frames.filter((frame) => frame.type === 'subscribed')).toHaveLength(1);
    expect(eventsBeforeDrop).toBeGreaterThan(0);
    expect(eventsBeforeDrop).toBeLessThan(b.events.length);
    // C joined after the end: a snapshot with the full text and nothing to replay.
    expect(c.frames[0]).toMatchObject({ type: 'snapshot' });
    expect(c.events).toHaveLength(0);

    // Postgres converges to one row holding the exact text.
    await eventually(async () => {
      const { body } = await http<{ items: { id: string; text: string; status: string }[] }>(server.url, 'GET', '/v1/conversations/c-resume/messages');
      return body.items.length === 1 && body.items[0]!.status === 'complete' && body.items[0]!.text === expected;
    });
    const rows = await server.infra.prisma.message.findMany({ where: { conversationId: 'c-resume' } });
    expect(rows).toHaveLength(1);
    expect(rows[0]!.text).toBe(expected);
    await Promise.all([a.close(), b.close(), c.close()]);
  });
});

/**
 * A device away while more events were written than its conversation's window holds, on a log
 * another conversation writes to at the same time. It comes back to the same instance.
 */
async function awayAndBack(seqline: ReturnType<typeof useSeqline>, conversationId: string) {
  const { server } = seqline;
  const agent = await seqline.agent(`writer-${conversationId}`);
  await createConversation(server.url, conversationId);
  await createConversation(server.url, `${conversationId}-other`);
  const back = new WsDevice(server.url, conversationId);
  await back.connect();
  await back.close();

  const answer = agent.startMessage(conversationId, { messageId: 'answer' });
  const other = agent.startMessage(`${conversationId}-other`, { messageId: 'other' });
  const tokens = Array.from({ length: 400 }, (_, i) => ` t${i}`);
  for (const token of tokens) {
    answer.append(token);
    other.append(token);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await Promise.all([answer.complete(), other.complete()]);

  // Subscribes again after the cursor it kept.
  const from = back.frames.length;
  await back.connect();
  await back.until(() => back.messages.get('answer')?.status === 'complete');
  const reads = await metric(server.url, 'seqline_recent_log_reads_total');
  await back.close();
  return { back, resumedWith: back.frames[from], expected: tokens.join(''), reads };
}

/** What a device that came back must end with: the exact text, after more events than the window, by a resume. */
function expectCaughtUp({ back, resumedWith, expected }: Awaited<ReturnType<typeof awayAndBack>>): void {
  expect(resumedWith).toMatchObject({ type: 'subscribed' });
  expect(back.events.length).toBeGreaterThan(32);
  expect(back.violations).toEqual([]);
  expect(back.text('answer')).toBe(expected);
}

describe('a device that comes back after missing more than the window', () => {
  const seqline = useSeqline({ FEED_WINDOW_EVENTS: '32' });

  it('catches up from the recent log in memory, exact and in order', async () => {
    const resumed = await awayAndBack(seqline, 'c-away');
    expectCaughtUp(resumed);
    expect(resumed.reads).toBe(1);
  });
});

describe('a device that comes back after missing more than the window, with no recent log', () => {
  const seqline = useSeqline({ FEED_WINDOW_EVENTS: '32', RECENT_LOG_BYTES: '0' });

  it('catches up from JetStream, exact and in order', async () => {
    const resumed = await awayAndBack(seqline, 'c-away-log');
    expectCaughtUp(resumed);
    expect(resumed.reads).toBe(0);
  });
});

describe('a device that comes back at the head, after its conversation left the instance', () => {
  const seqline = useSeqline({ FEED_LINGER: '200ms' });

  it('resumes from the recent log with no JetStream read, then gets the next answer live and exact', async () => {
    const { server } = seqline;
    const agent = await seqline.agent('writer-head');
    await createConversation(server.url, 'c-head');
    const device = new WsDevice(server.url, 'c-head');
    await device.connect();
    const first = agent.startMessage('c-head', { messageId: 'a1' });
    for (let i = 0; i < 50; i++) first.append(` a${i}`);
    await first.complete();
    await device.until(() => device.messages.get('a1')?.status === 'complete');
    const cursor = device.cursor!;
    await device.close();
    // No device follows the conversation here any more: its feed (and window) is dropped.
    await eventually(async () => (await metric(server.url, 'seqline_live_feeds')) === 0, 10_000, 'the feed dropped');

    const log = server.infra.log;
    const reads: string[] = [];
    const spies = [
      jest.spyOn(log, 'next').mockName('next'),
      jest.spyOn(log, 'nextSeq').mockName('nextSeq'),
      jest.spyOn(log, 'lastSeq').mockName('lastSeq'),
      jest.spyOn(log, 'readBatches').mockName('readBatches'),
    ];
    const subjectAt = jest.spyOn(log, 'subjectAt');
    const recentBefore = await metric(server.url, 'seqline_recent_log_reads_total');
    const from = device.frames.length;
    await device.connect();
    await device.until(() => device.frames.length > from);
    for (const spy of spies) for (const [conversationId] of spy.mock.calls) if (conversationId === 'c-head') reads.push(spy.getMockName());
    reads.push(...subjectAt.mock.calls.filter(([seq]) => seq === parseCursor(cursor)!.seq).map(() => 'subjectAt'));
    for (const spy of [...spies, subjectAt]) spy.mockRestore();
    expect(device.frames[from]).toMatchObject({ type: 'subscribed', cursor, head: cursor });
    expect(reads).toEqual([]);
    expect(await metric(server.url, 'seqline_recent_log_reads_total')).toBe((recentBefore ?? 0) + 1);

    const second = agent.startMessage('c-head', { messageId: 'a2' });
    const tokens = Array.from({ length: 50 }, (_, i) => ` b${i}`);
    for (const token of tokens) second.append(token);
    await second.complete();
    await device.until(() => device.messages.get('a2')?.status === 'complete');
    expect(device.text('a2')).toBe(tokens.join(''));
    expect(device.violations).toEqual([]);
    await device.close();
  });
});
