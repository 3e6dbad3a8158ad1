import { loadEnv, prismaDir, settingsFrom, type Settings } from '@seqline/config';
import { ConversationRepository, MessageRepository, PrismaService } from '@seqline/persistence';
import { connectNats, ConversationLog, LogStream, NatsUnreachableError, type NatsConnection } from '@seqline/streams';

/**
 * What a command works with: the same settings (environment) as the server, a NATS connection and
 * Postgres. The stream is attached as it is, never created or changed: these are operator tools.
 */
export class CliContext {
  readonly prismaDir = prismaDir();
  readonly conversations: ConversationRepository;
  readonly messages: MessageRepository;

  private constructor(
    readonly settings: Settings,
    private readonly connection: NatsConnection | Error,
    readonly prisma: PrismaService,
  ) {
    this.conversations = new ConversationRepository(prisma);
    this.messages = new MessageRepository(prisma);
  }

  /**
   * With `natsOptional`, a NATS that cannot be reached does not stop the command: `nc` throws why
   * when used, and the rest (Postgres) still works. `doctor` reports that way during a NATS outage.
   */
  static async open(settings: Settings = settingsFrom(loadEnv()), options: { natsOptional?: boolean } = {}): Promise<CliContext> {
    const nc = await connectNats({ ...settings.nats, name: 'seqline-cli' }).catch((error: unknown) => {
      if (options.natsOptional && error instanceof NatsUnreachableError) return error;
      throw error;
    });
    return new CliContext(settings, nc, new PrismaService(settings.database.url));
  }

  get nc(): NatsConnection {
    if (this.connection instanceof Error) throw this.connection;
    return this.connection;
  }

  async stream(): Promise<{ stream: LogStream; log: ConversationLog }> {
    const stream = await LogStream.attach(this.nc, this.settings.log);
    return { stream, log: new ConversationLog(stream) };
  }

  async close(): Promise<void> {
    if (!(this.connection instanceof Error)) await this.connection.close();
    await this.prisma.$disconnect();
  }
}
