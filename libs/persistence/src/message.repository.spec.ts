import { jest } from '@jest/globals';
import { MessageRepository } from './message.repository.js';
import type { PrismaService } from './prisma.service.js';

describe('MessageRepository.watermarkOf', () => {
  it('reads the watermarks of conversations asked for at once in a few statements, each caller getting its own', async () => {
    const findMany = jest.fn(async ({ where }: { where: { id: { in: string[] } } }) =>
      where.id.in.filter((id) => id !== 'missing').map((id) => ({ id, appliedSeq: BigInt(id.length), logEpoch: 'e1' })),
    );
    const repository = new MessageRepository({ conversation: { findMany } } as unknown as PrismaService);
    const ids = [...Array.from({ length: 500 }, (_, i) => `c-${i}`), 'missing'];
    const watermarks = await Promise.all(ids.map((id) => repository.watermarkOf(id)));
    expect(findMany.mock.calls.length).toBeLessThanOrEqual(4);
    expect(watermarks[0]).toEqual({ seq: 3, epoch: 'e1' });
    expect(watermarks[499]).toEqual({ seq: 5, epoch: 'e1' });
    expect(watermarks[500]).toBeUndefined();
  });
});
