import type { PrismaService } from './prisma.service.js';
import { toConversationRecord, type ConversationRecord } from './records.js';

export class ConversationRepository {
  constructor(private readonly prisma: PrismaService) {}

  /** Returns null when the id is taken. */
  async create(id: string, title: string | null): Promise<ConversationRecord | null> {
    try {
      return toConversationRecord(await this.prisma.conversation.create({ data: { id, title } }));
    } catch (error) {
      if ((error as { code?: string }).code === 'P2002') return null;
      throw error;
    }
  }

  async remove(id: string): Promise<void> {
    await this.prisma.conversation.deleteMany({ where: { id } });
  }

  async get(id: string): Promise<ConversationRecord | null> {
    const row = await this.prisma.conversation.findUnique({ where: { id } });
    return row ? toConversationRecord(row) : null;
  }

  /** One round trip to the database, for readiness checks. */
  async ping(): Promise<void> {
    await this.prisma.$queryRaw`SELECT 1`;
  }

  async exists(id: string): Promise<boolean> {
    return (await this.prisma.conversation.count({ where: { id } })) > 0;
  }

  /** Ordered by id; `after` is the last id of the previous page. */
  async list(after: string | undefined, limit: number): Promise<ConversationRecord[]> {
    const rows = await this.prisma.conversation.findMany({
      where: after === undefined ? {} : { id: { gt: after } },
      orderBy: { id: 'asc' },
      take: limit,
    });
    return rows.map(toConversationRecord);
  }
}
