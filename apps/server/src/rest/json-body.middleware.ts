import { ErrorCode, HTTP_STATUS, SeqlineError } from '@seqline/protocol';
import type { RequestHandler } from 'express';

/**
 * Refuses a request body that is not sent as JSON (`BAD_FRAME`), as every transport refuses a
 * frame that is not JSON. The JSON parser leaves such a body unread, so without this a form-encoded
 * `{"id":"trip"}` would reach the route as no body at all and create a conversation with a random id.
 */
export function requireJsonBodies(): RequestHandler {
  return (request, response, next) => {
    const hasBody = request.headers['transfer-encoding'] !== undefined || Number(request.headers['content-length'] ?? 0) > 0;
    if (!hasBody || request.is('application/json')) return next();
    const error = new SeqlineError(ErrorCode.BadFrame, `the body must be JSON, sent with Content-Type: application/json (got ${request.headers['content-type'] ?? 'no Content-Type'})`);
    response.status(HTTP_STATUS[error.code]).json(error.toBody());
  };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The JSON parser's `verify`: a body that is not UTF-8 is refused as a frame is, instead of its bytes being taken as U+FFFD for good. */
export function requireUtf8(_request: unknown, _response: unknown, body: Buffer): void {
  try {
    utf8.decode(body);
  } catch {
    throw new SeqlineError(ErrorCode.BadFrame, 'body is not valid UTF-8');
  }
}
