import { ConfigError, type Settings } from '@seqline/config';
import { DatabaseUnreachableError, isDatabaseUnavailable, type ArchivedMessage } from '@seqline/persistence';
import { isLogUnavailable, NatsUnreachableError } from '@seqline/streams';
import { ID_PATTERN, parseCursor, type Message } from '@seqline/protocol';
import { history, listConversations } from './admin.commands.js';
import { CliContext } from './cli-context.js';
import { ConversationRepair, RepairError } from './conversation-repair.js';
import { doctor, formatChecks } from './doctor.command.js';

const USAGE = `Usage: seqline <command> [--json]

  doctor                      check NATS, the log stream and its consumers, Postgres, migrations,
                              the persister lease and lag, holes, log epochs and watermarks past
                              the log's end; exits 1 on a problem
                              (recorded holes are a warning: no command can fill them)
  repair <conversation>       rebuild a conversation's rows and watermark from the log
  repair --all                the same for every conversation in Postgres or in the log; one that
                              cannot be repaired now is reported and the rest go on (exit 1)
  conversations               list conversations
  history <conversation>      a conversation's messages as Postgres holds them, older log epochs first

Reads the same environment as the server (NATS_URL, DATABASE_URL, SEQLINE_PREFIX, ...).`;

/** Runs one command and returns the exit code: 0 done, 1 a problem found or a command failed, 2 bad usage. */
export async function runCli(args: string[], out: (text: string) => void, settings?: Settings): Promise<number> {
  const json = args.includes('--json');
  const [command, target] = args.filter((arg) => arg !== '--json');
  const print = (value: unknown, text: string): void => out(json ? JSON.stringify(value, null, 2) : text);
  /** A refusal, with the protocol's code: `{ code, message }` under `--json`, as every other answer. */
  const fail = (error: { code: string; message: string }): void => print(error, `seqline: ${error.message}`);
  if (command === undefined || command === 'help' || command === '--help') {
    out(USAGE);
    return command === undefined ? 2 : 0;
  }
  if (!['doctor', 'repair', 'conversations', 'history'].includes(command) || ((command === 'repair' || command === 'history') && !target) || (command === 'history' && target === '--all')) {
    out(USAGE);
    return 2;
  }
  // An id goes into NATS subjects, where `*` and `>` are wildcards: `repair '*'` would read every conversation into one.
  if ((command === 'repair' || command === 'history') && target !== '--all' && !ID_PATTERN.test(target!)) {
    fail({ code: 'VALIDATION_FAILED', message: `"${target}" is not a conversation id (1-128 characters of A-Z a-z 0-9 _ -)` });
    return 2;
  }
  try {
    return await run(command, target, json, out, print, fail, settings);
  } catch (error) {
    if (!json) throw error;
    // Under --json a failure is an answer like the others, with a code a script can branch on.
    print(failureOf(error), '');
    return 1;
  }
}

/** A command's failure as `{ code, message }`: what stops it before it could answer (configuration, NATS, Postgres) or a repair's own refusal. */
export function failureOf(error: unknown): { code: string; message: string } {
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof RepairError) return { code: error.code, message };
  if (error instanceof ConfigError) return { code: 'CONFIG_INVALID', message };
  if (error instanceof NatsUnreachableError) return { code: 'NATS_UNREACHABLE', message };
  if (error instanceof DatabaseUnreachableError || isDatabaseUnavailable(error)) return { code: 'DATABASE_UNREACHABLE', message };
  // JetStream could not serve a request (an election that outlasted the retries): the same command may succeed later.
  if (isLogUnavailable(error)) return { code: 'UNAVAILABLE', message };
  return { code: 'INTERNAL', message };
}

/** Why `repair --all` could not repair one conversation: `UNAVAILABLE` when running it again may help, `INTERNAL` when it would not. */
function repairFailureOf(error: unknown): { code: string; message: string } {
  const failure = failureOf(error);
  // A refusal the repair names keeps its code; NATS or Postgres away may pass by itself.
  if (error instanceof RepairError || failure.code === 'INTERNAL') return failure;
  return { ...failure, code: 'UNAVAILABLE' };
}

async function run(
  command: string,
  target: string | undefined,
  json: boolean,
  out: (text: string) => void,
  print: (value: unknown, text: string) => void,
  fail: (error: { code: string; message: string }) => void,
  settings?: Settings,
): Promise<number> {
  // doctor goes on without NATS, to report Postgres during a NATS outage too; conversations reads Postgres alone.
  const context = await CliContext.open(settings, { natsOptional: command === 'doctor' || command === 'conversations' });
  try {
    switch (command) {
      case 'doctor': {
        const checks = await doctor(context);
        print(checks, formatChecks(checks));
        return checks.some((check) => check.status === 'fail') ? 1 : 0;
      }
      case 'repair': {
        const { stream, log } = await context.stream();
        const repair = new ConversationRepair(stream, log, context.conversations, context.messages);
        const ids = target === '--all' ? [...new Set([...(await listConversations(context)).map((conversation) => conversation.id), ...(await log.conversationIds())])].sort() : [target!];
        const results = [];
        const failures: { conversationId: string; error: { code: string; message: string } }[] = [];
        for (const id of ids) {
          let result;
          try {
            result = await repair.repair(id);
          } catch (error) {
            // One conversation that cannot be repaired now does not stop the others of `--all`.
            if (target !== '--all') throw error;
            const failure = repairFailureOf(error);
            const message = failure.message;
            failures.push({ conversationId: id, error: failure });
            if (!json) out(`seqline: could not repair ${id}: ${message}`);
            continue;
          }
          if (!result) {
            const message = `conversation ${id} does not exist: neither Postgres nor the log holds it`;
            if (target !== '--all') {
              fail({ code: 'UNKNOWN_CONVERSATION', message });
              return 1;
            }
            // Listed at the start, gone since (its events expired meanwhile): the others are repaired all the same.
            failures.push({ conversationId: id, error: { code: 'UNKNOWN_CONVERSATION', message } });
            if (!json) out(`seqline: could not repair ${id}: ${message}`);
            continue;
          }
          results.push(result);
          if (!json) {
            const notes = [
              result.archived ? 'older epoch archived' : '',
              result.undecodable.length > 0 ? `undecodable events skipped: ${result.undecodable.join(', ')}` : '',
              result.forks.length > 0 ? `events forking the conversation skipped: ${result.forks.join(', ')}` : '',
            ].filter(Boolean);
            out(`repaired ${id}: ${result.messages} messages up to ${stream.epoch}-${result.seq} (log ${result.log})${notes.length > 0 ? `; ${notes.join('; ')}` : ''}`);
          }
        }
        // Under --json one list, in the order repaired: a result, or `{ conversationId, error }` for one not repaired now.
        if (json) out(JSON.stringify([...results, ...failures].sort((a, b) => (a.conversationId < b.conversationId ? -1 : 1)), null, 2));
        else {
          // Each failure's line says what it needs; "again" only where that is all it needs.
          const again = failures.every((failure) => failure.error.code === 'UNAVAILABLE') ? '; run the repair again for them' : '';
          out(`${results.length} conversations repaired${failures.length > 0 ? `, ${failures.length} not (see above)${again}` : ''}`);
        }
        return failures.length > 0 ? 1 : 0;
      }
      case 'conversations': {
        const conversations = await listConversations(context);
        print(conversations, conversations.map((c) => `${c.id}\t${c.createdAt}\t${c.title ?? ''}`).join('\n'));
        return 0;
      }
      case 'history': {
        const { stream } = await context.stream();
        const messages = await history(context, target!, stream.epoch);
        if (!messages) {
          fail({ code: 'UNKNOWN_CONVERSATION', message: `conversation ${target} does not exist` });
          return 1;
        }
        print(messages, historyText(messages, stream.epoch));
        return 0;
      }
      default:
        out(USAGE);
        return 2;
    }
  } finally {
    await context.close();
  }
}

/** One line a message; rows of an older log epoch (the log was recreated) under a line naming it. */
function historyText(messages: (Message | ArchivedMessage)[], currentEpoch: string): string {
  const lines: string[] = [];
  let epoch: string | undefined;
  for (const m of messages) {
    const own = parseCursor(m.cursor)?.epoch;
    if (own !== epoch && (own !== currentEpoch || epoch !== undefined)) lines.push(`-- log epoch ${own}${own === currentEpoch ? ' (current)' : ' (older log)'} --`);
    epoch = own;
    lines.push(`[${m.author.role}/${m.author.id} ${m.status}${m.error ? `: ${m.error}` : ''}] ${m.text}`);
  }
  return lines.join('\n');
}
