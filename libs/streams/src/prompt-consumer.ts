import { AckPolicy, DeliverPolicy, type JetStreamManager } from '@nats-io/jetstream';

const nanos = (ms: number): number => ms * 1_000_000;

/** The durable consumer agents share by default; the service creates it at start. */
export const DEFAULT_AGENT_GROUP = 'agents';
/** How long an agent holds a prompt without an in-progress ack before it goes to another agent. */
export const PROMPT_ACK_WAIT_MS = 30_000;
/** Prompts out at once per group (agents together); more wait in the stream. */
const PROMPT_MAX_ACK_PENDING = 1_000;

/**
 * Creates (or finds) a group's prompt consumer: every prompt from the start of the stream, so
 * prompts posted before any agent connected are answered; explicit acks; a prompt whose agent
 * goes silent for `PROMPT_ACK_WAIT_MS` is redelivered. The service and the agent SDK both call
 * this with the same settings, so whichever comes first creates it.
 */
export async function ensurePromptConsumer(jsm: JetStreamManager, stream: string, promptSubjects: string, group = DEFAULT_AGENT_GROUP): Promise<void> {
  await jsm.consumers
    .add(stream, {
      durable_name: group,
      filter_subject: promptSubjects,
      deliver_policy: DeliverPolicy.All,
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(PROMPT_ACK_WAIT_MS),
      max_ack_pending: PROMPT_MAX_ACK_PENDING,
    })
    .catch(async (error: unknown) => {
      // Created meanwhile by another instance or agent (possibly with other settings an operator chose): use it as it is.
      if (!(await jsm.consumers.info(stream, group).catch(() => null))) throw error;
    });
}
