import { Injectable, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import { ErrorCode, SeqlineError } from '@seqline/protocol';
import { timeout, TimeoutError, catchError, throwError, type Observable } from 'rxjs';

/** Longer than any request takes while Postgres and NATS answer; far shorter than TCP takes to give a dead route up. */
export const REQUEST_TIME_LIMIT_MS = 15_000;

/**
 * Answers a REST request `503 UNAVAILABLE` once it has taken `REQUEST_TIME_LIMIT_MS`: a database
 * or log that stops answering without closing its connections (a network partition) would
 * otherwise leave the request open until TCP gives up, many minutes later. What the request was
 * doing may still complete, so it guards reads and posts (a post retried under its `messageId`
 * is applied once), not the creation of a conversation, whose retry could create a second one.
 */
@Injectable()
export class RequestTimeLimitInterceptor implements NestInterceptor {
  intercept(_context: ExecutionContext, next: CallHandler): Observable<unknown> {
    return next.handle().pipe(
      timeout(REQUEST_TIME_LIMIT_MS),
      catchError((error: unknown) =>
        throwError(() =>
          error instanceof TimeoutError ? new SeqlineError(ErrorCode.Unavailable, `no answer within ${REQUEST_TIME_LIMIT_MS / 1000} s (the database or the log is not answering); retry shortly`) : error,
        ),
      ),
    );
  }
}
