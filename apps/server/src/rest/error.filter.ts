import { Catch, HttpException, HttpStatus, Inject, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import { ErrorCode, SeqlineError, type ErrorBody } from '@seqline/protocol';
import type { Response } from 'express';
import type { Logger } from 'pino';
import { LOGGER } from '../core/tokens.js';

const STATUS: Record<ErrorCode, number> = {
  BAD_FRAME: HttpStatus.BAD_REQUEST,
  FRAME_TOO_LARGE: HttpStatus.PAYLOAD_TOO_LARGE,
  VALIDATION_FAILED: HttpStatus.BAD_REQUEST,
  BAD_CURSOR: HttpStatus.BAD_REQUEST,
  CURSOR_EXPIRED: HttpStatus.GONE,
  UNKNOWN_CONVERSATION: HttpStatus.NOT_FOUND,
  CONVERSATION_EXISTS: HttpStatus.CONFLICT,
  UNKNOWN_MESSAGE: HttpStatus.NOT_FOUND,
  MESSAGE_EXISTS: HttpStatus.CONFLICT,
  MESSAGE_FINISHED: HttpStatus.CONFLICT,
  PART_OUT_OF_ORDER: HttpStatus.CONFLICT,
  DELTA_TOO_LARGE: HttpStatus.PAYLOAD_TOO_LARGE,
  MESSAGE_TOO_LARGE: HttpStatus.PAYLOAD_TOO_LARGE,
  NOT_SUBSCRIBED: HttpStatus.BAD_REQUEST,
  TOO_MANY_SUBSCRIPTIONS: HttpStatus.TOO_MANY_REQUESTS,
  NOT_FOUND: HttpStatus.NOT_FOUND,
  UNAUTHORIZED: HttpStatus.UNAUTHORIZED,
  FORBIDDEN: HttpStatus.FORBIDDEN,
  RATE_LIMITED: HttpStatus.TOO_MANY_REQUESTS,
  UNAVAILABLE: HttpStatus.SERVICE_UNAVAILABLE,
  INTERNAL: HttpStatus.INTERNAL_SERVER_ERROR,
};

/** Maps every error to `{ code, message }` with a fitting HTTP status. */
@Catch()
export class ErrorFilter implements ExceptionFilter {
  constructor(@Inject(LOGGER) private readonly logger: Logger) {}

  catch(error: unknown, host: ArgumentsHost): void {
    const response = host.switchToHttp().getResponse<Response>();
    if (response.headersSent) {
      response.end();
      return;
    }
    const [status, body] = this.describe(error);
    response.status(status).json(body);
  }

  private describe(error: unknown): [number, ErrorBody] {
    if (error instanceof SeqlineError) return [STATUS[error.code], error.toBody()];
    if (error instanceof HttpException) {
      const status = error.getStatus();
      if (status === HttpStatus.NOT_FOUND) return [status, { code: ErrorCode.NotFound, message: 'no such route' }];
      if (status === HttpStatus.PAYLOAD_TOO_LARGE) return [status, { code: ErrorCode.FrameTooLarge, message: 'request body too large' }];
      if (status < 500) return [status, { code: ErrorCode.ValidationFailed, message: error.message }];
    }
    if ((error as { type?: string }).type === 'entity.parse.failed') return [400, { code: ErrorCode.ValidationFailed, message: 'body is not valid JSON' }];
    this.logger.error({ err: error }, 'request failed');
    return [HttpStatus.INTERNAL_SERVER_ERROR, { code: ErrorCode.Internal, message: 'internal error' }];
  }
}
