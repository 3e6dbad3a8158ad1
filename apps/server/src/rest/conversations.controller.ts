import { Body, Controller, Get, HttpCode, Param, Post, Query, UseGuards, UseInterceptors } from '@nestjs/common';
import { AdminGuard } from '../auth/admin.guard.js';
import { CreateConversationBodySchema, IdSchema, PageQuerySchema, PostMessageBodySchema, type CreateConversationBody, type PageQuery, type PostMessageBody } from '@seqline/protocol';
import { ConversationsService } from './conversations.service.js';
import { RequestTimeLimitInterceptor } from './request-time-limit.interceptor.js';
import { ZodValidationPipe } from './zod-validation.pipe.js';

const Page = new ZodValidationPipe(PageQuerySchema);
const ConversationId = new ZodValidationPipe(IdSchema);

/** Admin REST under `/v1`; see docs/protocol.md#admin-rest. */
@Controller('v1/conversations')
@UseGuards(AdminGuard)
export class ConversationsController {
  constructor(private readonly service: ConversationsService) {}

  @Post()
  create(@Body(new ZodValidationPipe(CreateConversationBodySchema)) body: CreateConversationBody) {
    return this.service.create(body);
  }

  @UseInterceptors(RequestTimeLimitInterceptor)
  @Get()
  list(@Query(Page) page: PageQuery) {
    return this.service.list(page);
  }

  @UseInterceptors(RequestTimeLimitInterceptor)
  @Get(':id')
  get(@Param('id', ConversationId) id: string) {
    return this.service.get(id);
  }

  @UseInterceptors(RequestTimeLimitInterceptor)
  @Get(':id/messages')
  history(@Param('id', ConversationId) id: string, @Query(Page) page: PageQuery) {
    return this.service.history(id, page);
  }

  @UseInterceptors(RequestTimeLimitInterceptor)
  @Post(':id/messages')
  @HttpCode(202)
  post(@Param('id', ConversationId) id: string, @Body(new ZodValidationPipe(PostMessageBodySchema)) body: PostMessageBody) {
    return this.service.post(id, body);
  }

  @UseInterceptors(RequestTimeLimitInterceptor)
  @Get(':id/events')
  events(@Param('id', ConversationId) id: string, @Query(Page) page: PageQuery) {
    return this.service.events(id, page);
  }
}
