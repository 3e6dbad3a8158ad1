import { AckPolicy, DeliverPolicy, JetStreamApiCodes, JetStreamApiError, type JetStreamManager } from '@nats-io/jetstream';
import { retryTransient } from './election-retry.js';

const nanos = (ms: number): number => ms * 1_000_000;

/** The durable consumer agents share by default; the service creates it at start. */
export const DEFAULT_AGENT_GROUP = 'agents';
/** How long an agent holds a prompt without an in-progress ack before it goes to another agent (`PROMPT_ACK_WAIT` on the service). */
export const PROMPT_ACK_WAIT_MS = 30_000;
/** Prompts out at once per group (agents together); more wait in the stream. */
const PROMPT_MAX_ACK_PENDING = 1_000;
/** Deliveries of one prompt before it is given up: a handler that fails on it every time does not loop forever. */
export const PROMPT_MAX_DELIVER = 10;

/**
 * The prompt consumer's settings: every prompt from the start of the stream, so prompts posted
 * before any agent connected are answered; explicit acks; a prompt whose agent goes silent for
 * `ackWaitMs` is redelivered, at most `PROMPT_MAX_DELIVER` times in all.
 */
function promptConsumerConfig(promptSubjects: string, group: string, ackWaitMs: number) {
  return {
    durable_name: group,
    filter_subject: promptSubjects,
    deliver_policy: DeliverPolicy.All,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(ackWaitMs),
    max_ack_pending: PROMPT_MAX_ACK_PENDING,
    max_deliver: PROMPT_MAX_DELIVER,
  };
}

/** What NATS changes on a consumer in place: the rest of a consumer that differs is kept as it is. */
const UPDATABLE = ['ack_wait', 'max_ack_pending', 'max_deliver'] as const;
const FIXED = ['filter_subject', 'deliver_policy', 'ack_policy'] as const;

/**
 * The service's side: creates the default group's consumer before the first prompt can be
 * posted, or brings an existing one to the configured settings. nats-server 2.9 updates a durable
 * consumer created again; from 2.10 such a create is refused when the settings differ, and what
 * can change in place (the ack wait among them) is updated instead.
 */
export async function applyPromptConsumer(jsm: JetStreamManager, stream: string, promptSubjects: string, ackWaitMs: number, group = DEFAULT_AGENT_GROUP): Promise<'applied' | 'kept'> {
  const wanted = promptConsumerConfig(promptSubjects, group, ackWaitMs);
  try {
    await retryTransient(() => jsm.consumers.add(stream, wanted));
    return 'applied';
  } catch (error) {
    const existing = await jsm.consumers.info(stream, group).catch(() => null);
    if (!existing) throw error;
    const config = existing.config as unknown as Record<string, unknown>;
    const differs = (keys: readonly (keyof typeof wanted)[]): boolean => keys.some((key) => config[key] !== wanted[key]);
    // One that differs in what NATS cannot update (made by an operator, or by an older version): kept as it is, all of it.
    if (differs(FIXED)) return 'kept';
    if (!differs(UPDATABLE)) return 'applied';
    try {
      await retryTransient(() => jsm.consumers.update(stream, group, { ack_wait: wanted.ack_wait, max_ack_pending: wanted.max_ack_pending, max_deliver: wanted.max_deliver }));
      return 'applied';
    } catch (refusal) {
      // Refused by JetStream for what the consumer holds (an operator's back-off list longer than
      // its deliveries, an account limit): it works as it is, and the service says so. NATS not
      // answering is the start's to report, as a failure to create would be.
      if (refusal instanceof JetStreamApiError) return 'kept';
      throw refusal;
    }
  }
}

/**
 * The agent's side: uses the group's consumer as the service (or an operator) set it up, and
 * creates it with the default settings only if it does not exist yet (a group of its own).
 */
export async function ensurePromptConsumer(jsm: JetStreamManager, stream: string, promptSubjects: string, group = DEFAULT_AGENT_GROUP): Promise<void> {
  try {
    await jsm.consumers.info(stream, group);
    return;
  } catch (error) {
    // Only a consumer that is not there is created. On any other failure (a timeout, JetStream
    // not ready after a restart) it may well exist, and adding it would put the default settings
    // over the service's (NATS 2.9 updates a durable added again), `PROMPT_ACK_WAIT` among them.
    if (!isConsumerNotFound(error)) throw error;
  }
  await jsm.consumers.add(stream, promptConsumerConfig(promptSubjects, group, PROMPT_ACK_WAIT_MS)).catch(async (error: unknown) => {
    // Created meanwhile by the service or another agent: use it as it is.
    if (!(await jsm.consumers.info(stream, group).catch(() => null))) throw error;
  });
}

function isConsumerNotFound(error: unknown): boolean {
  return error instanceof JetStreamApiError && error.code === JetStreamApiCodes.ConsumerNotFound;
}
