import { formatCursor } from '@seqline/protocol';
import { history } from './admin.commands.js';
import type { CliContext } from './cli-context.js';

const EPOCH = 'a';
const at = '2026-11-25T10:00:00.000Z';
const message = (seq: number) => ({ id: `m${seq}`, author: { role: 'user' as const, id: 'u' }, status: 'complete' as const, text: `m${seq}`, parts: 0, createdAt: at, updatedAt: at, cursor: formatCursor({ epoch: EPOCH, seq }), createdSeq: seq });

describe('history', () => {
  it('lists in log order a conversation archived between two of its pages (the log recreated meanwhile)', async () => {
    // Three messages of epoch `a`, read two to a page: once the first page is read, the persister
    // archives them all (the first event of a new log), so the second page finds none.
    const rows = [1, 2, 3].map(message);
    let archived = false;
    const context = {
      conversations: { exists: async () => true },
      messages: {
        watermarks: async () => new Map([['c', { seq: 3, epoch: EPOCH }]]),
        page: async (_id: string, after: number) => {
          const page = archived ? [] : rows.filter((row) => row.createdSeq > after).slice(0, 2);
          archived = true;
          return { messages: page, more: page.length === 2 };
        },
        archived: async () => rows.map(({ parts: _parts, createdSeq: _seq, ...kept }) => kept),
      },
    } as unknown as CliContext;

    const listed = await history(context, 'c', 'b');

    expect(listed?.map((shown) => shown.id)).toEqual(['m1', 'm2', 'm3']);
  });
});
