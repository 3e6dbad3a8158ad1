import { Inject, type BeforeApplicationShutdown } from '@nestjs/common';
import { WebSocketGateway, type OnGatewayConnection } from '@nestjs/websockets';
import type { Settings } from '@seqline/config';
import { CloseCode } from '@seqline/protocol';
import type { Logger } from 'pino';
import type { WebSocket } from 'ws';
import { LOGGER, SETTINGS } from '../../core/tokens.js';
import { ConversationCommands } from '../../ingest/conversation-commands.service.js';
import { SubscriptionService } from '../subscription.service.js';
import { DeviceSession } from './device-session.js';
import { MetricsService } from '../../metrics/metrics.service.js';

/** `/v1/ws`: devices subscribe from a cursor and post; see docs/protocol.md#websocket. */
@WebSocketGateway({ path: '/v1/ws', maxPayload: 4 * 1024 * 1024 })
export class DeviceGateway implements OnGatewayConnection, BeforeApplicationShutdown {
  private readonly sessions = new Map<DeviceSession, Promise<void>>();

  constructor(
    private readonly subscriptions: SubscriptionService,
    private readonly commands: ConversationCommands,
    private readonly metrics: MetricsService,
    @Inject(SETTINGS) private readonly settings: Settings,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  handleConnection(socket: WebSocket): void {
    const session = new DeviceSession(socket, {
      subscriptions: this.subscriptions,
      commands: this.commands,
      metrics: this.metrics,
      settings: this.settings,
      logger: this.logger,
    });
    this.sessions.set(session, new Promise((resolve) => socket.once('close', () => resolve())));
    this.metrics.devices.inc();
    socket.on('close', () => {
      this.sessions.delete(session);
      this.metrics.devices.dec();
    });
  }

  /** Tells every device to move to another instance, before the HTTP server stops (which would cut sockets without a code). */
  async beforeApplicationShutdown(): Promise<void> {
    const closed = [...this.sessions.values()];
    for (const session of this.sessions.keys()) session.close(CloseCode.GoingAway, 'server shutting down: reconnect and resume');
    await Promise.race([Promise.all(closed), new Promise((resolve) => setTimeout(resolve, 2_000))]);
  }
}
