#!/usr/bin/env node
import { ConfigError } from '@seqline/config';
import { DatabaseUnreachableError } from '@seqline/persistence';
import { NatsUnreachableError } from '@seqline/streams';
import { errorText } from './doctor.command.js';
import { runCli } from './seqline-cli.js';

runCli(process.argv.slice(2), (text) => process.stdout.write(`${text}\n`)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    const known = error instanceof ConfigError || error instanceof NatsUnreachableError || error instanceof DatabaseUnreachableError;
    process.stderr.write(`seqline: ${known ? (error as Error).message : errorText(error)}\n`);
    process.exit(1);
  },
);
