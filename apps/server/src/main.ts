import 'reflect-metadata';
import { ConfigError, loadEnv, settingsFrom } from '@seqline/config';
import { DatabaseUnreachableError } from '@seqline/persistence';
import { NatsUnreachableError } from '@seqline/streams';
import { defaultAssets, startServer } from './server.js';

async function main(): Promise<void> {
  const settings = settingsFrom(loadEnv());
  const server = await startServer(settings, { assets: defaultAssets() });
  server.infra.logger.info({ url: `http://${settings.http.host}:${settings.http.port}` }, 'seqline serving');
  const stop = (signal: string): void => {
    server.infra.logger.info({ signal }, 'draining');
    // A dependency that hangs (Postgres gone without a word) must not hold the stop until the
    // orchestrator kills the process: what was not handed over lapses (leases, unwritten events
    // redelivered to the next persister), as after a crash.
    setTimeout(() => {
      server.infra.logger.error({ signal, timeoutMs: settings.shutdownTimeoutMs }, 'stopping took longer than SHUTDOWN_TIMEOUT; exiting');
      process.exit(1);
    }, settings.shutdownTimeoutMs).unref();
    void server.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError || error instanceof NatsUnreachableError || error instanceof DatabaseUnreachableError) {
    process.stderr.write(`seqline: ${error.message}\n`);
  } else {
    process.stderr.write(`seqline: failed to start: ${(error as Error).stack ?? String(error)}\n`);
  }
  process.exit(1);
});
