import { ConfigError, type Settings } from '@seqline/config';
/** Room a log record takes beyond the frame it came from (the event's other fields, its chain link, headers). */
const RECORD_OVERHEAD_BYTES = 4_096;

/**
 * A frame the service accepts must fit in a NATS message once it is a log record: one that passed
 * the limit and then failed to publish would be refused `UNAVAILABLE` and retried for ever.
 */
export function checkFrameLimit(settings: Settings, maxPayload: number | undefined): void {
  if (maxPayload === undefined || settings.limits.frameBytes + RECORD_OVERHEAD_BYTES <= maxPayload) return;
  throw new ConfigError(
    `LIMIT_FRAME_BYTES=${settings.limits.frameBytes} does not fit the NATS server's max_payload (${maxPayload} bytes) with ${RECORD_OVERHEAD_BYTES} bytes for the rest of a log record: lower it to at most ${maxPayload - RECORD_OVERHEAD_BYTES}, or raise max_payload`,
  );
}
