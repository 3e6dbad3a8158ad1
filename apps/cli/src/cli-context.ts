import { resolve } from 'node:path';
import { loadEnv, settingsFrom, type Settings } from '@seqline/config';
import { ConversationRepository, MessageRepository, PrismaService } from '@seqline/persistence';
import { connectNats, ConversationLog, LogStream, type NatsConnection } from '@seqline/streams';

/**
 * What a command works with: the same settings (environment) as the server, a NATS connection and
 * Postgres. The stream is attached as it is, never created or changed: these are operator tools.
 */
export class CliContext {
  readonly prismaDir = resolve(process.env.SEQLINE_PRISMA_DIR ?? 'prisma');
  readonly conversations: ConversationRepository;
  readonly messages: MessageRepository;

  private constructor(
    readonly settings: Settings,
    readonly nc: NatsConnection,
    readonly prisma: PrismaService,
  ) {
    this.conversations = new ConversationRepository(prisma);
    this.messages = new MessageRepository(prisma);
  }

  static async open(settings: Settings = settingsFrom(loadEnv())): Promise<CliContext> {
    const nc = await connectNats({ ...settings.nats, name: 'seqline-cli' });
    return new CliContext(settings, nc, new PrismaService(settings.database.url));
  }

  async stream(): Promise<{ stream: LogStream; log: ConversationLog }> {
    const stream = await LogStream.attach(this.nc, this.settings.log);
    return { stream, log: new ConversationLog(stream) };
  }

  async close(): Promise<void> {
    await this.nc.close();
    await this.prisma.$disconnect();
  }
}
