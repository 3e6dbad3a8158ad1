/**
 * The first nats-server release whose replicated streams serialize
 * `Nats-Expected-Last-Subject-Sequence` (nats-server#4320). Before it, two publishes to one
 * subject with the same expectation, in flight at the same time, can both be stored on a stream
 * with more than one replica: a conversation's log can fork when two instances write it at once.
 * A single replica was never affected.
 */
export const SERIALIZED_SUBJECT_EXPECTATIONS = '2.9.21';

/** Whether a nats-server of `version` keeps one writer per conversation on a replicated log. */
export function serializesSubjectExpectations(version: string | undefined): boolean {
  const parts = /^v?(\d+)\.(\d+)\.(\d+)/.exec(version ?? '');
  if (!parts) return false;
  const [major, minor, patch] = parts.slice(1).map(Number) as [number, number, number];
  const [needMajor, needMinor, needPatch] = SERIALIZED_SUBJECT_EXPECTATIONS.split('.').map(Number) as [number, number, number];
  if (major !== needMajor) return major > needMajor;
  if (minor !== needMinor) return minor > needMinor;
  return patch >= needPatch;
}

/** What to tell an operator running a replicated log on a server that predates the fix; undefined when all is well. */
export function replicatedWriteWarning(version: string | undefined, replicas: number): string | undefined {
  if (replicas <= 1 || serializesSubjectExpectations(version)) return undefined;
  return `nats-server ${version ?? '(unknown version)'} does not serialize expected-last-subject-sequence on a replicated stream (nats-server#4320, fixed in ${SERIALIZED_SUBJECT_EXPECTATIONS}): two instances writing one conversation at once can fork its log. Upgrade every NATS node to ${SERIALIZED_SUBJECT_EXPECTATIONS} or later (2.10+ recommended), or run LOG_REPLICAS=1.`;
}
