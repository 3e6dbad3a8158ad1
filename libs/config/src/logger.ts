import { pino, type Logger } from 'pino';

/** Structured JSON logs on stdout, one object per line. */
export function createLogger(level: string, name = 'seqline'): Logger {
  return pino({ name, level, base: { service: name } });
}
export type { Logger };
