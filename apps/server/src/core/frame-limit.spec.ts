import { ConfigError, loadEnv, settingsFrom } from '@seqline/config';
import { checkFrameLimit } from './frame-limit.js';

describe('checkFrameLimit', () => {
  it('refuses a frame limit a log record could not fit in a NATS message, saying what to lower it to', () => {
    const settings = settingsFrom(loadEnv({ LIMIT_FRAME_BYTES: String(2 * 1024 * 1024) }));
    expect(() => checkFrameLimit(settings, 1024 * 1024)).toThrow(
      new ConfigError(
        "LIMIT_FRAME_BYTES=2097152 does not fit the NATS server's max_payload (1048576 bytes) with 4096 bytes for the rest of a log record: lower it to at most 1044480, or raise max_payload",
      ),
    );
    expect(() => checkFrameLimit(settings, 8 * 1024 * 1024)).not.toThrow();
    expect(() => checkFrameLimit(settingsFrom(loadEnv({})), 1024 * 1024)).not.toThrow();
  });
});
