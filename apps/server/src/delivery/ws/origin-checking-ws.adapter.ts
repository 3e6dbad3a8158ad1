import type { EventEmitter } from 'node:events';
import type { INestApplicationContext } from '@nestjs/common';
import { WsAdapter } from '@nestjs/platform-ws';
import { HTTP_STATUS } from '@seqline/protocol';
import type { VerifyClientCallbackAsync } from 'ws';
import type { OriginPolicy } from '../../auth/origin-policy.js';

/**
 * Nest's `ws` adapter, with `ALLOWED_ORIGINS` checked on every upgrade before it opens (browsers
 * let any page open a WebSocket anywhere, so the server has to look at `Origin`). A refused
 * upgrade gets `403` with the error as JSON; a browser sees only a socket that never opened.
 *
 * Gateways without message handlers (the device gateway reads frames itself, in DeviceSession)
 * get no message pipeline: Nest's would cost every socket two dozen RxJS subscribers and
 * closures, held for its whole life, and every frame a pass through them.
 */
export class OriginCheckingWsAdapter extends WsAdapter {
  constructor(
    app: INestApplicationContext,
    private readonly origins: OriginPolicy,
    options?: ConstructorParameters<typeof WsAdapter>[1],
  ) {
    super(app, options);
  }

  override create(port: number, options: Parameters<WsAdapter['create']>[1] = {}): ReturnType<WsAdapter['create']> {
    const verifyClient: VerifyClientCallbackAsync = ({ req }, done) => {
      const refusal = this.origins.refusal(req.headers);
      if (!refusal) return done(true);
      done(false, HTTP_STATUS[refusal.code], JSON.stringify(refusal.toBody()), { 'Content-Type': 'application/json' });
    };
    return super.create(port, { ...options, verifyClient });
  }

  /**
   * A socket's own errors are what its client sent wrong (a frame past `maxPayload`, a bad opcode,
   * an unmasked frame): `ws` closes that socket with the matching code, and no one else is
   * affected. Nest logs each at error level, so any client could fill the logs; they are debug
   * lines here. The server's own errors stay errors.
   */
  override bindErrorHandler(server: Parameters<WsAdapter['bindErrorHandler']>[0]): ReturnType<WsAdapter['bindErrorHandler']> {
    const target = server as EventEmitter;
    target.on('connection', (socket: EventEmitter) => socket.on('error', (error: Error) => this.logger.debug(`a device's socket failed: ${error.message}`)));
    target.on('error', (error: Error) => this.logger.error(error));
    return server;
  }

  override bindMessageHandlers(...args: Parameters<WsAdapter['bindMessageHandlers']>): void {
    const [, handlers] = args;
    if (handlers.length === 0) return;
    super.bindMessageHandlers(...args);
  }
}
