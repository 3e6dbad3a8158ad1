import { createLogger, prismaDir, type Settings } from '@seqline/config';
import { applyMigrations, ConversationRepository, ensureDatabase, MessageRepository, PrismaService } from '@seqline/persistence';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { WRITE_PARTITIONS } from '@seqline/protocol';
import { checkFrameLimit } from './frame-limit.js';
import { applyPromptConsumer, connectNats, ConversationLog, Lease, LogStream, PartitionLeases, replicatedWriteWarning } from '@seqline/streams';
import type { Logger } from 'pino';
import { within } from './within.js';

/** How long the stop waits for Postgres connections in use to come back before it goes. */
const DISCONNECT_WAIT_MS = 2_000;

const EPOCH_CHECK_MS = 2_000;

/** The connections a server instance holds; created before Nest so start-up failures are clear. */
export interface Infrastructure {
  settings: Settings;
  logger: Logger;
  stream: LogStream;
  log: ConversationLog;
  prisma: PrismaService;
  conversations: ConversationRepository;
  messages: MessageRepository;
  /** Held by one instance at a time: that instance persists the log and ends abandoned answers. */
  leadership: Lease;
  /** The write partitions this instance owns (see `partitionOf`). */
  partitions: PartitionLeases;
  close(): Promise<void>;
}

export async function openInfrastructure(settings: Settings, migrations = prismaDir()): Promise<Infrastructure> {
  const logger = createLogger(settings.logLevel);
  await ensureDatabase(settings.database.url);
  const applied = await applyMigrations({ databaseUrl: settings.database.url, prismaDir: migrations });
  if (applied.length > 0) logger.info({ migrations: applied }, 'applied migrations');
  const nc = await connectNats({ ...settings.nats, name: 'seqline-server' });
  try {
    checkFrameLimit(settings, nc.info?.max_payload);
    const stream = await LogStream.open(nc, settings.log);
    logger.info({ stream: stream.name, epoch: stream.epoch, retentionMs: settings.log.retentionMs }, 'log stream ready');
    const unsafe = replicatedWriteWarning(nc.info?.version, settings.log.replicas);
    if (unsafe) logger.error({ natsVersion: nc.info?.version, replicas: settings.log.replicas }, unsafe);
    // Before the first prompt can be posted, so no prompt is posted where no consumer will find it.
    if ((await applyPromptConsumer(stream.jsm, stream.name, stream.subjects.allPrompts, settings.promptAckWaitMs)) === 'kept') {
      logger.warn({ consumer: 'agents' }, 'the prompt consumer exists with settings that cannot be changed in place; kept as it is (see docs/protocol.md, prompts)');
    }
    /** Set once the leases are open: a log recreated before then is already followed by them. */
    let leaseBuckets: { ensureBucket(): Promise<void> }[] = [];
    stream.onEpochChange((epoch, previous) => {
      logger.warn({ stream: stream.name, epoch, previous }, 'the log stream was recreated; following the new epoch');
      applyPromptConsumer(stream.jsm, stream.name, stream.subjects.allPrompts, settings.promptAckWaitMs).catch((error: unknown) =>
        logger.error({ err: error }, 'could not create the prompt consumer on the new log'),
      );
      // A log that went with NATS's data (a restart without its storage) took the lease buckets
      // with it: without them no instance could take the persister lease or a write partition.
      for (const lease of leaseBuckets) lease.ensureBucket().catch((error: unknown) => logger.error({ err: error }, 'could not create a lease bucket again on the new log'));
    });
    // A deleted stream is created again and a recreated one noticed within this time, even by an idle instance.
    stream.watch(EPOCH_CHECK_MS, (error) => logger.warn({ err: error }, 'checking the log stream failed'));
    const prisma = new PrismaService(settings.database.url, { statementTimeoutMs: settings.database.statementTimeoutMs });
    const holder = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`.replace(/[^-\w]/g, '_');
    const bucket = `${settings.log.stream}_LEASES`;
    const leadership = await Lease.open(nc, { bucket, key: 'leader', ttlMs: settings.persist.leaseMs, holder, replicas: settings.log.replicas });
    // Their own bucket: its entries lapse after a longer time, so renewing 32 leases stays cheap.
    const partitions = await PartitionLeases.open(nc, { bucket: `${settings.log.stream}_PARTITIONS`, partitions: WRITE_PARTITIONS, ttlMs: settings.writePartitionLeaseMs, holder, replicas: settings.log.replicas });
    leaseBuckets = [leadership, partitions];
    return {
      settings,
      logger,
      stream,
      log: new ConversationLog(stream),
      prisma,
      conversations: new ConversationRepository(prisma),
      messages: new MessageRepository(prisma),
      leadership,
      partitions,
      async close() {
        stream.unwatch();
        await leadership.release();
        await nc.drain().catch(() => undefined);
        // Closing the pool waits for every connection in use: one on a Postgres that hangs would hold the stop.
        await within(prisma.$disconnect(), DISCONNECT_WAIT_MS).catch((error: unknown) => logger.warn({ err: error }, 'Postgres connections still in use at exit'));
      },
    };
  } catch (error) {
    await nc.close();
    throw error;
  }
}
