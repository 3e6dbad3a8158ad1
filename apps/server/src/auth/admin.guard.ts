import { Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import type { Request } from 'express';
import { Authenticator, credentialsFrom } from './authenticator.service.js';
import { requireAdmin } from './principal.js';

/** Admin routes: an admin API key or an admin token; device tokens get 403, no credentials 401. */
@Injectable()
export class AdminGuard implements CanActivate {
  constructor(private readonly authenticator: Authenticator) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const request = context.switchToHttp().getRequest<Request>();
    // Headers only: a token in the URL ends up in access logs, and no admin client needs one there.
    requireAdmin(await this.authenticator.authenticate(credentialsFrom(request.headers, undefined)));
    return true;
  }
}
