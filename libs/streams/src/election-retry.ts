import { JetStreamApiError } from '@nats-io/jetstream';
import { errors, RequestError } from '@nats-io/transport-node';
import { NoResponderError, RequesterClosedError, RequestTimeoutError } from './nats-requester.js';

/**
 * How long a call keeps retrying while JetStream has no leader to answer it. A NATS cluster
 * elects a new stream or meta leader within a few seconds of losing one; meanwhile requests get
 * no responders, time out or are answered 503. Longer than an election, shorter than a device's
 * or agent's patience.
 */
export const ELECTION_RETRY_MS = 15_000;

/**
 * An ephemeral consumer not created in this time is treated as unavailable. On a cluster that
 * lost a node, one can be placed on the missing node, and its creation is never answered.
 */
export const CONSUMER_CREATE_TIMEOUT_MS = 2_000;

/** JetStream answered that the stream has no leader now (503), or a reader stopped delivering. */
export class LeaderUnavailableError extends Error {}

/** What JetStream answers while a leader is being elected (or a node is briefly away): worth another try. */
export function isTransient(error: unknown): boolean {
  if (error instanceof NoResponderError || error instanceof RequestTimeoutError || error instanceof LeaderUnavailableError) return true;
  if (error instanceof errors.TimeoutError || error instanceof errors.NoRespondersError) return true;
  if (error instanceof RequestError && error.isNoResponders()) return true;
  // nats.js reports a JetStream API request nobody answered as "JetStream not enabled".
  if (error instanceof Error && error.name === 'JetStreamNotEnabled') return true;
  if (error instanceof JetStreamApiError) return error.status === 503;
  return false;
}

/**
 * True when a call failed because NATS or JetStream could not serve it (an election that
 * outlasted the retries, a connection that is closed or reconnecting): the same request may
 * succeed later, so the edge answers `UNAVAILABLE` (retryable) instead of `INTERNAL`.
 */
export function isLogUnavailable(error: unknown): boolean {
  if (isTransient(error)) return true;
  return error instanceof RequesterClosedError || error instanceof errors.ClosedConnectionError || error instanceof errors.DrainingConnectionError || error instanceof errors.ConnectionError;
}

/**
 * Runs `call` until it succeeds, fails for a reason other than an election, or `deadlineMs`
 * has passed; the last error is thrown then. Only for calls that are safe to repeat: reads, and
 * writes that carry a message id or an expected sequence.
 */
export async function retryTransient<T>(call: () => Promise<T>, deadlineMs = ELECTION_RETRY_MS): Promise<T> {
  const deadline = performance.now() + deadlineMs;
  for (let attempt = 0; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (!isTransient(error) || performance.now() >= deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.min(50 * 2 ** attempt, 1_000, Math.max(0, deadline - performance.now()))));
    }
  }
}
