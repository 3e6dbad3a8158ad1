import { resolve } from 'node:path';
import { NestFactory } from '@nestjs/core';
import express from 'express';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { installRoot, type Settings } from '@seqline/config';
import { AppModule } from './app.module.js';
import { OriginPolicy } from './auth/origin-policy.js';
import { openInfrastructure, type Infrastructure } from './core/infrastructure.js';
import { PinoNestLogger } from './core/pino-nest-logger.js';
import { OriginCheckingWsAdapter } from './delivery/ws/origin-checking-ws.adapter.js';
import { requireJsonBodies, requireUtf8 } from './rest/json-body.middleware.js';
import { corsMiddleware } from './rest/cors.middleware.js';

export interface RunningServer {
  app: NestExpressApplication;
  infra: Infrastructure;
  url: string;
  close(): Promise<void>;
}

/** Starts one server instance: migrations, stream, HTTP + WebSocket. Used by `main.ts` and by tests. */
export interface ServerOptions {
  prismaDir?: string;
  /** Folders served as static files (the demo web app, the device SDK bundle). */
  assets?: { dir: string; prefix?: string }[];
}

/** What every instance serves besides the API: the demo web app, the browser build of the device SDK and the AI SDK example page. */
export function defaultAssets(root = installRoot()): { dir: string; prefix?: string }[] {
  return [
    { dir: resolve(root, 'apps/server/public') },
    { dir: resolve(root, 'libs/client/dist/browser'), prefix: '/sdk/' },
    { dir: resolve(root, 'apps/ai-sdk-chat/dist'), prefix: '/ai-sdk/' },
  ];
}

export async function startServer(settings: Settings, options: ServerOptions = {}): Promise<RunningServer> {
  const infra = await openInfrastructure(settings, options.prismaDir);
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(infra), {
    logger: new PinoNestLogger(infra.logger),
    bodyParser: false,
  });
  const origins = app.get(OriginPolicy);
  // First, so a page on a refused origin gets nothing else: no body parsed, no static file.
  app.use(corsMiddleware(origins));
  app.use(requireJsonBodies());
  // Express's own parser rather than useBodyParser, which does not pass `verify` on.
  app.use(express.json({ limit: settings.limits.frameBytes, verify: requireUtf8 }));
  // Frames are parsed by DeviceSession, which answers bad ones with an error frame.
  app.useWebSocketAdapter(new OriginCheckingWsAdapter(app, origins, { messageParser: () => undefined }));
  for (const asset of options.assets ?? []) app.useStaticAssets(asset.dir, { prefix: asset.prefix });
  await app.listen(settings.http.port, settings.http.host);
  infra.leadership.start();
  if (!settings.auth) infra.logger.warn('authentication is OFF: every caller may read and write every conversation; set AUTH_JWT_SECRET (see docs/security.md)');
  const address = app.getHttpServer().address() as { port: number };
  let closing: Promise<void> | undefined;
  return {
    app,
    infra,
    url: `http://127.0.0.1:${address.port}`,
    close() {
      closing ??= (async () => {
        await app.close();
        await infra.close();
      })();
      return closing;
    },
  };
}
