import { Body, Controller, Post, UseGuards } from '@nestjs/common';
import { CreateTokenBodySchema, type CreateTokenBody } from '@seqline/protocol';
import { ZodValidationPipe } from '../rest/zod-validation.pipe.js';
import { AdminGuard } from './admin.guard.js';
import { Authenticator } from './authenticator.service.js';

/** `POST /v1/tokens`: an app backend, holding an admin API key, gets device tokens for its users. */
@Controller('v1/tokens')
@UseGuards(AdminGuard)
export class TokensController {
  constructor(private readonly authenticator: Authenticator) {}

  @Post()
  create(@Body(new ZodValidationPipe(CreateTokenBodySchema)) body: CreateTokenBody) {
    return this.authenticator.mint(body);
  }
}
