import { resolve } from 'node:path';
import type { Settings } from '@seqline/config';
import { startServer, type RunningServer } from '../../../apps/server/src/server.js';

/** Starts a real server instance (HTTP, WebSocket, agent listener, persister) for a test. */
export function startTestServer(settings: Settings): Promise<RunningServer> {
  return startServer(settings, {
    prismaDir: resolve('prisma'),
    assets: [{ dir: resolve('apps/server/public') }, { dir: resolve('libs/client/dist/browser'), prefix: '/sdk/' }],
  });
}
export type { RunningServer };
