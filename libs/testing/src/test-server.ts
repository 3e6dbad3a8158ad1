import { resolve } from 'node:path';
import type { Settings } from '@seqline/config';
import { defaultAssets, startServer, type RunningServer } from '../../../apps/server/src/server.js';

/** Starts a real server instance (HTTP, WebSocket, agent listener, persister) for a test. */
export function startTestServer(settings: Settings): Promise<RunningServer> {
  return startServer(settings, { prismaDir: resolve('prisma'), assets: defaultAssets() });
}
export type { RunningServer };
