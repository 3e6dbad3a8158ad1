import { Injectable, type PipeTransform } from '@nestjs/common';
import { validate } from '@seqline/protocol';
import type { z } from 'zod';

/** Validates a body or query with the protocol's schema, the same one the SDKs use, by the same rules as every transport. */
@Injectable()
export class ZodValidationPipe<T extends z.ZodType> implements PipeTransform<unknown, z.infer<T>> {
  constructor(private readonly schema: T) {}

  transform(value: unknown): z.infer<T> {
    return validate(this.schema, value ?? {}, 'body');
  }
}
