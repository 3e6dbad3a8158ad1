import { pendingMigrations, type LogHole } from '@seqline/persistence';
import { DEFAULT_AGENT_GROUP as PROMPT_CONSUMER, Lease, PERSISTER_CONSUMER, persisterLag, replicatedWriteWarning, type LogStream } from '@seqline/streams';
import type { CliContext } from './cli-context.js';

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface Check {
  name: string;
  status: CheckStatus;
  detail: string;
}

const HOLES_SHOWN = 20;

/**
 * Checks everything the service depends on and everything that can leave Postgres behind the log.
 * Each check is independent: one that cannot run fails alone and the rest still report.
 */
export async function doctor(context: CliContext): Promise<Check[]> {
  const checks: Check[] = [];
  const run = async (name: string, check: () => Promise<Omit<Check, 'name'>>): Promise<void> => {
    try {
      checks.push({ name, ...(await check()) });
    } catch (error) {
      checks.push({ name, status: 'fail', detail: errorText(error) });
    }
  };
  const { settings } = context;
  await run('nats', async () => ({ status: 'ok', detail: `connected to ${context.nc.getServer()}` }));
  let stream: LogStream | undefined;
  await run('stream', async () => {
    stream = (await context.stream()).stream;
    const info = await stream.jsm.streams.info(stream.name);
    const retentionMs = Math.round(info.config.max_age / 1_000_000);
    const detail = `${stream.name}: epoch ${stream.epoch}, ${info.state.messages} messages, sequences ${info.state.first_seq}-${info.state.last_seq}, retention ${retentionMs} ms`;
    if (retentionMs !== settings.log.retentionMs) return { status: 'warn', detail: `${detail}; LOG_RETENTION says ${settings.log.retentionMs} ms (the server applies it at start)` };
    return { status: 'ok', detail };
  });
  await run('replication', async () => {
    if (!stream) throw new Error('no stream');
    const replicas = (await stream.jsm.streams.info(stream.name)).config.num_replicas;
    const version = context.nc.info?.version;
    const unsafe = replicatedWriteWarning(version, replicas);
    return unsafe ? { status: 'fail', detail: unsafe } : { status: 'ok', detail: `${replicas} replica${replicas === 1 ? '' : 's'} on nats-server ${version}` };
  });
  await run('consumers', async () => {
    if (!stream) throw new Error('no stream');
    const names: string[] = [];
    for await (const consumer of stream.jsm.consumers.list(stream.name)) names.push(consumer.name);
    const missing = [PERSISTER_CONSUMER, PROMPT_CONSUMER].filter((name) => !names.includes(name));
    const detail = `${names.length} on the stream`;
    if (missing.length > 0) return { status: 'fail', detail: `${detail}; missing ${missing.join(', ')} (a running server creates them)` };
    return { status: 'ok', detail: `${detail}, ${PERSISTER_CONSUMER} and ${PROMPT_CONSUMER} present` };
  });
  await run('postgres', async () => {
    await context.conversations.ping();
    return { status: 'ok', detail: 'answering' };
  });
  await run('migrations', async () => {
    const pending = await pendingMigrations(context.prisma, context.prismaDir);
    return pending.length > 0 ? { status: 'fail', detail: `not applied: ${pending.join(', ')} (a server applies them at start)` } : { status: 'ok', detail: 'all applied' };
  });
  await run('lease', async () => {
    const holder = await Lease.holderOf(context.nc, `${settings.log.stream}_LEASES`, 'leader');
    return holder ? { status: 'ok', detail: `persister lease held by ${holder}` } : { status: 'fail', detail: 'nobody holds the persister lease: no instance writes Postgres' };
  });
  await run('persister lag', async () => {
    if (!stream) throw new Error('no stream');
    const lag = await persisterLag(stream);
    const detail = `${lag.events} events, oldest ${lag.seconds.toFixed(1)} s`;
    return lag.seconds > settings.persist.lagDegradedSeconds ? { status: 'warn', detail: `${detail} (over PERSIST_LAG_DEGRADED)` } : { status: 'ok', detail };
  });
  await run('holes', async () => {
    const { holes: total, conversations } = await context.messages.holeCount();
    if (total === 0) return { status: 'ok', detail: 'none recorded' };
    const shown = await context.messages.holes(HOLES_SHOWN);
    const lines = shown.map((hole) => `${hole.conversationId}: events ${hole.afterSeq + 1}-${hole.untilSeq} (epoch ${hole.epoch}) ${holeReason(hole.reason, hole.untilSeq)}`);
    const more = total > shown.length ? `\n    ... and ${total - shown.length} older` : '';
    // A hole is history no command can fill: a failure would stay for good and hide new problems.
    // Watch seqline_log_holes_total for new ones.
    return {
      status: 'warn',
      detail: `${total} recorded in ${conversations} conversation${conversations === 1 ? '' : 's'}, newest first (no repair fills them):\n    ${lines.join('\n    ')}${more}`,
    };
  });
  await run('epoch', async () => {
    if (!stream) throw new Error('no stream');
    const other = await context.messages.otherEpochCount(stream.epoch);
    if (other > 0) return { status: 'fail', detail: `${other} conversations were persisted under another log epoch (the log was recreated, or restored from a backup); run \`seqline repair --all\`` };
    // The same epoch, but the log ends before Postgres: it lost events it had acknowledged.
    const last = (await stream.jsm.streams.info(stream.name)).state.last_seq;
    const ahead = await context.messages.aheadOfLog(stream.epoch, last);
    if (ahead.conversations === 0) return { status: 'ok', detail: `every watermark counts in epoch ${stream.epoch}` };
    return {
      status: 'fail',
      detail: `${ahead.conversations} conversations are persisted past the log's last event (${last}), e.g. ${ahead.sample.join(', ')}: the log lost events it had acknowledged, and writes to them are refused until the log is recreated (see Replicas in docs/production.md)`,
    };
  });
  return checks;
}

export function formatChecks(checks: Check[]): string {
  return checks.map((check) => `${check.status.toUpperCase().padEnd(5)} ${check.name.padEnd(14)} ${check.detail}`).join('\n');
}

/** The telling line of an error (driver errors carry several lines of context first). */
export function errorText(error: unknown): string {
  const lines = String((error as Error).message ?? error).split('\n').map((line) => line.trim()).filter(Boolean);
  return lines.at(-1) ?? 'unknown error';
}

function holeReason(reason: LogHole['reason'], untilSeq: number): string {
  switch (reason) {
    case 'undecodable':
      return `undecodable event at ${untilSeq}`;
    case 'fork':
      return `event at ${untilSeq} forks the conversation (a second event after the same one)`;
    case 'retention':
      return 'expired before they were persisted';
    default: {
      const unreachable: never = reason;
      return unreachable;
    }
  }
}
