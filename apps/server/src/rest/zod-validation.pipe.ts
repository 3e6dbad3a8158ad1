import { Injectable, type PipeTransform } from '@nestjs/common';
import { ErrorCode, SeqlineError } from '@seqline/protocol';
import type { z } from 'zod';

/** Validates a body or query with the protocol's schema, the same one the SDKs use. */
@Injectable()
export class ZodValidationPipe<T extends z.ZodType> implements PipeTransform<unknown, z.infer<T>> {
  constructor(private readonly schema: T) {}

  transform(value: unknown): z.infer<T> {
    const result = this.schema.safeParse(value ?? {});
    if (result.success) return result.data;
    throw new SeqlineError(ErrorCode.ValidationFailed, result.error.issues.map((issue) => `${issue.path.join('.') || 'value'}: ${issue.message}`).join('; '));
  }
}
