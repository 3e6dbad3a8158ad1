import type { z } from 'zod';
import { ErrorCode, SeqlineError } from './errors.js';
import { utf8Length } from './utf8.js';

/**
 * The one place a frame, command or request body becomes a typed value, for every transport
 * (WebSocket, NATS, REST), so the same mistake gets the same code everywhere:
 * - too large: `FRAME_TOO_LARGE`;
 * - not JSON, not a JSON object, or a missing or unknown `type`: `BAD_FRAME` (the receiver cannot tell what was meant);
 * - a known `type` with missing or invalid fields: `VALIDATION_FAILED`, naming each field.
 */
export interface FrameRules {
  /** What the text is called in messages: `frame`, `command`, `body`. */
  what: string;
  maxBytes?: number;
}

/** Parses JSON text (or its UTF-8 bytes) and validates it against `schema`. */
export function parseFrame<S extends z.ZodType>(schema: S, raw: string | Uint8Array, rules: FrameRules): z.infer<S> {
  const bytes = typeof raw === 'string' ? utf8Length(raw) : raw.length;
  if (rules.maxBytes !== undefined && bytes > rules.maxBytes) {
    throw new SeqlineError(ErrorCode.FrameTooLarge, `${rules.what} is ${bytes} bytes; the limit is ${rules.maxBytes}`);
  }
  let text: string;
  try {
    text = typeof raw === 'string' ? raw : decoder.decode(raw);
  } catch {
    // Bytes that are not UTF-8 (half of a character a byte-level tokenizer split) would be taken as U+FFFD, for good.
    throw new SeqlineError(ErrorCode.BadFrame, `${rules.what} is not valid UTF-8`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new SeqlineError(ErrorCode.BadFrame, `${rules.what} is not valid JSON`);
  }
  return validate(schema, json, rules.what);
}

/** Validates an already parsed value (a REST body or query) by the same rules. */
export function validate<S extends z.ZodType>(schema: S, value: unknown, what: string): z.infer<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw schemaError(result.error.issues, what);
  const illFormed = illFormedAt(result.data);
  if (illFormed !== undefined) {
    throw new SeqlineError(ErrorCode.ValidationFailed, `${illFormed || what}: text must be well-formed Unicode, without NUL characters or unpaired surrogates`);
  }
  return result.data;
}

/**
 * NUL, and a surrogate without its other half. Neither is text: Postgres refuses NUL in text and
 * both in JSON, so one such event in the log would stop its conversation's rows for good.
 */
// eslint-disable-next-line no-control-regex -- NUL is exactly what this looks for
const ILL_FORMED = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** `text` with what `illFormedAt` refuses (NUL, an unpaired surrogate) replaced by U+FFFD, for text a sender may shorten or mend. */
export function wellFormed(text: string): string {
  return text.replace(new RegExp(ILL_FORMED.source, 'g'), '\ufffd');
}

/** The path of the first string (or key) in `value` that is not well-formed text, `''` for `value` itself. */
export function illFormedAt(value: unknown): string | undefined {
  if (typeof value === 'string') return ILL_FORMED.test(value) ? '' : undefined;
  if (typeof value !== 'object' || value === null) return undefined;
  for (const [key, item] of Object.entries(value)) {
    if (ILL_FORMED.test(key)) return key;
    const inner = illFormedAt(item);
    if (inner !== undefined) return inner === '' ? key : `${key}.${inner}`;
  }
  return undefined;
}

/** The error for a schema's issues: `BAD_FRAME` when the shape or `type` is unknown, `VALIDATION_FAILED` for fields. */
export function schemaError(issues: readonly z.core.$ZodIssue[], what: string): SeqlineError {
  const message = issues.map((issue) => `${issue.path.map(String).join('.') || what}: ${issue.message}`).join('; ');
  const unknownShape = issues.some((issue) => (issue.path.length === 0 && issue.code === 'invalid_type') || (issue.code === 'invalid_union' && issue.path.length === 1 && issue.path[0] === 'type'));
  return new SeqlineError(unknownShape ? ErrorCode.BadFrame : ErrorCode.ValidationFailed, message);
}

/**
 * Any error as a protocol error: a `SeqlineError` as it is, anything else (a bug, or a failure
 * the layer below did not classify) as `fallback` with a message that leaks nothing.
 */
export function toSeqlineError(error: unknown, fallback: typeof ErrorCode.Internal | typeof ErrorCode.Unavailable = ErrorCode.Internal): SeqlineError {
  if (error instanceof SeqlineError) return error;
  return new SeqlineError(fallback, fallback === ErrorCode.Unavailable ? 'the service could not complete the request; retry it' : 'internal error');
}

const decoder = new TextDecoder('utf-8', { fatal: true });

