import { toArchivedMessage } from './records.js';

const row = (blocks: unknown) => ({
  id: 'a1',
  authorRole: 'agent',
  authorId: 'bot',
  status: 'complete',
  text: 'hi',
  blocks,
  error: null,
  createdAt: new Date('2026-11-25T10:00:00.000Z'),
  updatedAt: new Date('2026-11-25T10:00:00.000Z'),
  createdSeq: 3n,
  logEpoch: 'e1',
});

describe('a stored message as devices and admins see it', () => {
  it('has no blocks key when its row holds only blocks of types a newer version stored, as a device that passed over their appends has none', () => {
    const message = toArchivedMessage(row([{ type: 'chart', id: 'c1', spec: '{}' }]) as Parameters<typeof toArchivedMessage>[0]);
    expect('blocks' in message).toBe(false);
    expect(toArchivedMessage(row([{ type: 'text', id: 't1', text: 'hi' }]) as Parameters<typeof toArchivedMessage>[0]).blocks).toEqual([{ type: 'text', id: 't1', text: 'hi' }]);
  });
});
