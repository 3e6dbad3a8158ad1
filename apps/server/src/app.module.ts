import { Module, type DynamicModule } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { TerminusModule } from '@nestjs/terminus';
import { ConversationRepository, MessageRepository } from '@seqline/persistence';
import { ConversationLog, Lease, LogStream, PartitionLeases } from '@seqline/streams';
import type { Infrastructure } from './core/infrastructure.js';
import { LOGGER, SETTINGS } from './core/tokens.js';
import { DeviceGateway } from './delivery/ws/device.gateway.js';
import { SseController } from './delivery/sse/sse.controller.js';
import { SubscriptionService } from './delivery/subscription.service.js';
import { CursorResolver } from './delivery/cursor-resolver.js';
import { LiveFeed } from './delivery/live/live-feed.service.js';
import { ConnectionLimiter } from './auth/connection-limiter.js';
import { SubscribeAllowance } from './auth/subscribe-allowance.js';
import { AgentListener } from './ingest/agent-listener.service.js';
import { WriteRouter } from './ingest/write-router.service.js';
import { CommandsInFlight } from './ingest/commands-in-flight.js';
import { ConversationCommands } from './ingest/conversation-commands.service.js';
import { ConversationWriter } from './ingest/conversation-writer.service.js';
import { LogPersister } from './persist/log-persister.service.js';
import { AbandonedAnswerReaper } from './persist/abandoned-answer-reaper.service.js';
import { ConversationsController } from './rest/conversations.controller.js';
import { ConversationsService } from './rest/conversations.service.js';
import { ErrorFilter } from './rest/error.filter.js';
import { HealthController } from './rest/health.controller.js';
import { OpenApiController } from './rest/openapi.controller.js';
import { Authenticator } from './auth/authenticator.service.js';
import { AdminGuard } from './auth/admin.guard.js';
import { OriginPolicy } from './auth/origin-policy.js';
import { TokensController } from './auth/tokens.controller.js';
import { SnapshotService } from './state/snapshot.service.js';
import { MetricsController } from './metrics/metrics.controller.js';
import { MetricsService } from './metrics/metrics.service.js';

@Module({})
export class AppModule {
  static forRoot(infra: Infrastructure): DynamicModule {
    return {
      module: AppModule,
      imports: [TerminusModule.forRoot({ logger: false })],
      controllers: [ConversationsController, SseController, HealthController, MetricsController, TokensController, OpenApiController],
      providers: [
        { provide: SETTINGS, useValue: infra.settings },
        { provide: LOGGER, useValue: infra.logger },
        { provide: LogStream, useValue: infra.stream },
        { provide: ConversationLog, useValue: infra.log },
        { provide: Lease, useValue: infra.leadership },
        { provide: PartitionLeases, useValue: infra.partitions },
        { provide: ConversationRepository, useValue: infra.conversations },
        { provide: MessageRepository, useValue: infra.messages },
        { provide: APP_FILTER, useClass: ErrorFilter },
        MetricsService,
        Authenticator,
        AdminGuard,
        OriginPolicy,
        SnapshotService,
        ConversationWriter,
        CommandsInFlight,
        WriteRouter,
        ConversationCommands,
        AgentListener,
        LogPersister,
        AbandonedAnswerReaper,
        ConnectionLimiter,
        SubscribeAllowance,
        CursorResolver,
        LiveFeed,
        SubscriptionService,
        ConversationsService,
        DeviceGateway,
      ],
    };
  }
}
