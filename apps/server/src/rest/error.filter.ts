import { Catch, HttpException, HttpStatus, Inject, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import { ErrorCode, HTTP_STATUS, isKnownErrorCode, isRetryable, SeqlineError, toSeqlineError, type ErrorBody } from '@seqline/protocol';
import { isDatabaseUnavailable, isStatementTimeout } from '@seqline/persistence';
import { isLogUnavailable } from '@seqline/streams';
import type { Response } from 'express';
import type { Logger } from 'pino';
import { LOGGER } from '../core/tokens.js';

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
    // Retryable in HTTP's terms too, for clients and proxies that know no error codes; a second is the shortest wait it can name.
    if (isRetryable(body.code)) response.setHeader('Retry-After', '1');
    response.status(status).json(body);
  }

  private describe(raw: unknown): [number, ErrorBody] {
    // A refusal of the body parser's `verify` (not UTF-8) arrives wrapped.
    const error = raw instanceof HttpException && raw.cause instanceof SeqlineError ? raw.cause : raw;
    // A code this version does not know came from a newer instance (a command handed to its owner in a rolling upgrade): passed on as it is.
    if (error instanceof SeqlineError) return [isKnownErrorCode(error.code) ? HTTP_STATUS[error.code] : HttpStatus.INTERNAL_SERVER_ERROR, error.toBody()];
    // Not JSON is BAD_FRAME on every transport (see parseFrame in the protocol). body-parser's
    // error (a SyntaxError with status 400, type entity.parse.failed) arrives wrapped or bare.
    const cause = (error instanceof HttpException ? error.cause : error) as { type?: string; message?: string } | undefined;
    if (cause?.type === 'entity.parse.failed') {
      return [HTTP_STATUS.BAD_FRAME, { code: ErrorCode.BadFrame, message: 'body is not valid JSON' }];
    }
    // A body in a charset or a content encoding the parser cannot read is not JSON it can read either.
    if (cause?.type === 'charset.unsupported' || cause?.type === 'encoding.unsupported') {
      return [HTTP_STATUS.BAD_FRAME, { code: ErrorCode.BadFrame, message: `body cannot be read: ${cause.message ?? cause.type}` }];
    }
    if (error instanceof HttpException) {
      const status = error.getStatus();
      if (status === HttpStatus.NOT_FOUND) return [status, { code: ErrorCode.NotFound, message: 'no such route' }];
      if (status === HttpStatus.PAYLOAD_TOO_LARGE) return [status, { code: ErrorCode.FrameTooLarge, message: 'request body too large' }];
      // Under its code's own status: a client that maps codes to statuses finds the pair it expects.
      if (status < 500) return [HTTP_STATUS.VALIDATION_FAILED, { code: ErrorCode.ValidationFailed, message: error.message }];
    }
    // A dependency that is down is not a bug: the same request may succeed in a moment.
    if (isStatementTimeout(error)) return this.unavailable(error, 'Postgres did not finish a statement within DATABASE_STATEMENT_TIMEOUT; retry shortly');
    if (isDatabaseUnavailable(error)) return this.unavailable(error, 'Postgres is unavailable; retry shortly');
    if (isLogUnavailable(error)) return this.unavailable(error, 'the log (NATS JetStream) is unavailable; retry shortly');
    this.logger.error({ err: error }, 'request failed');
    const unknown = toSeqlineError(error);
    return [HTTP_STATUS[unknown.code], unknown.toBody()];
  }

  private unavailable(error: unknown, message: string): [number, ErrorBody] {
    this.logger.warn({ err: error }, 'request failed: a dependency is unavailable');
    return [HTTP_STATUS.UNAVAILABLE, { code: ErrorCode.Unavailable, message }];
  }
}
