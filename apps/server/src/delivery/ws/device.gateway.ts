import type { IncomingMessage } from 'node:http';
import { Inject, type BeforeApplicationShutdown, type OnModuleDestroy } from '@nestjs/common';
import { WebSocketGateway, type OnGatewayConnection } from '@nestjs/websockets';
import type { Settings } from '@seqline/config';
import { CloseCode, ErrorCode, SeqlineError } from '@seqline/protocol';
import { waitAtMost } from '@seqline/streams';
import type { Logger } from 'pino';
import type { WebSocket } from 'ws';
import { Authenticator, credentialsFrom, TokenExpiredError } from '../../auth/authenticator.service.js';
import { userOf } from '../../auth/principal.js';
import { ConnectionLimiter } from '../../auth/connection-limiter.js';
import { RateLimiter } from '../../auth/rate-limiter.js';
import { SubscribeAllowance } from '../../auth/subscribe-allowance.js';
import { LOGGER, SETTINGS } from '../../core/tokens.js';
import { ConversationCommands } from '../../ingest/conversation-commands.service.js';
import { MetricsService } from '../../metrics/metrics.service.js';
import { SubscriptionService } from '../subscription.service.js';
import { DeviceSession } from './device-session.js';

/** Frames held while a connection's token is checked, at most. */
const MAX_EARLY_FRAMES = 64;
const MAX_EARLY_BYTES = 1024 * 1024;

/** Why a draining instance closes a socket (1001): the device reconnects to another and resumes. */
const GOING_AWAY = 'server shutting down: reconnect and resume';

/**
 * `/v1/ws`: devices subscribe from a cursor and post; see docs/protocol.md#devices-over-websocket.
 * No compression: live events are framed once and written as they are to every socket (text-frame.ts).
 * UTF-8 is checked by the frame parser, not by `ws`: a text frame that is not UTF-8 is one refused
 * frame (`BAD_FRAME`), where `ws` would close the socket (1007) and end every subscription on it.
 */
@WebSocketGateway({ path: '/v1/ws', maxPayload: 4 * 1024 * 1024, perMessageDeflate: false, skipUTF8Validation: true })
export class DeviceGateway implements OnGatewayConnection, BeforeApplicationShutdown, OnModuleDestroy {
  private readonly sessions = new Map<DeviceSession, Promise<void>>();
  private readonly postLimiter: RateLimiter;
  /** One timer pings every socket, so an idle socket costs no timer of its own. */
  private readonly heartbeat: NodeJS.Timeout;
  /** Set once the instance drains: a device that connects now is sent on at once, as the others were. */
  private draining = false;

  constructor(
    private readonly subscriptions: SubscriptionService,
    private readonly commands: ConversationCommands,
    private readonly metrics: MetricsService,
    private readonly authenticator: Authenticator,
    private readonly connections: ConnectionLimiter,
    private readonly subscribes: SubscribeAllowance,
    @Inject(SETTINGS) private readonly settings: Settings,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    this.postLimiter = new RateLimiter(settings.limits.devicePostsPerSecond);
    this.heartbeat = setInterval(() => {
      for (const session of this.sessions.keys()) session.beat();
    }, settings.ws.heartbeatMs);
    this.heartbeat.unref();
  }

  onModuleDestroy(): void {
    clearInterval(this.heartbeat);
  }

  async handleConnection(socket: WebSocket, request: IncomingMessage): Promise<void> {
    // The load balancer may still send devices here for a moment; each goes on to another instance.
    if (this.draining) return socket.close(CloseCode.GoingAway, GOING_AWAY);
    // Frames that arrive while the token is checked are held, not lost.
    const early: [Buffer, boolean][] = [];
    let earlyBytes = 0;
    const hold = (data: Buffer, isBinary: boolean): void => {
      earlyBytes += data.length;
      // A client that floods before it is even let in is not held in memory for.
      if (early.length >= MAX_EARLY_FRAMES || earlyBytes > MAX_EARLY_BYTES) {
        socket.close(CloseCode.PolicyViolation, 'too many frames before the token was checked');
        return;
      }
      early.push([data, isBinary]);
    };
    socket.on('message', hold);
    let principal;
    try {
      principal = await this.authenticator.authenticate(credentialsFrom(request.headers, request.url));
    } catch (error) {
      const body = error instanceof SeqlineError ? error.toBody() : { code: ErrorCode.Unauthorized, message: 'token refused' };
      socket.send(JSON.stringify({ type: 'error', ...body }));
      // A token that could not be checked now is not a bad one: the client must not drop it.
      const code = error instanceof TokenExpiredError ? CloseCode.TokenExpired : body.code === ErrorCode.Unavailable ? CloseCode.TryAgainLater : CloseCode.Unauthorized;
      socket.close(code, body.message.slice(0, 120));
      return;
    }
    // Gone while its token was checked: nothing to set up.
    if (socket.readyState !== socket.OPEN) return;
    // The instance began to drain while the token was checked (a key set fetched can take seconds).
    if (this.draining) return socket.close(CloseCode.GoingAway, GOING_AWAY);
    const release = this.connections.admit(userOf(principal));
    if (!release) {
      socket.close(CloseCode.TooManyConnections, `at most ${this.connections.limit} connections per user (WebSocket and SSE together)`);
      return;
    }
    socket.off('message', hold);
    const session = new DeviceSession(socket, principal, {
      subscriptions: this.subscriptions,
      commands: this.commands,
      metrics: this.metrics,
      authenticator: this.authenticator,
      postLimiter: this.postLimiter,
      subscribes: this.subscribes,
      settings: this.settings,
      logger: this.logger,
    });
    this.sessions.set(session, new Promise((resolve) => socket.once('close', () => resolve())));
    this.metrics.devices.inc();
    socket.on('close', () => {
      this.sessions.delete(session);
      this.metrics.devices.dec();
      release();
    });
    for (const [data, isBinary] of early) session.receiveFrame(data, isBinary);
  }

  /** Tells every device to move to another instance, before the HTTP server stops (which would cut sockets without a code). */
  async beforeApplicationShutdown(): Promise<void> {
    this.draining = true;
    const closed = [...this.sessions.values()];
    for (const session of this.sessions.keys()) session.close(CloseCode.GoingAway, GOING_AWAY);
    await waitAtMost(Promise.all(closed), 2_000);
  }
}
