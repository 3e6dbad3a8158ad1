import { Injectable, type ArgumentMetadata, type PipeTransform } from '@nestjs/common';
import { validate } from '@seqline/protocol';
import type { z } from 'zod';

/** Validates a body, query or path parameter with the protocol's schema, the same one the SDKs use, by the same rules as every transport. */
@Injectable()
export class ZodValidationPipe<T extends z.ZodType> implements PipeTransform<unknown, z.infer<T>> {
  constructor(private readonly schema: T) {}

  transform(value: unknown, metadata: ArgumentMetadata): z.infer<T> {
    // A request without a body is an empty one (`POST /v1/conversations` alone creates one); a body
    // that is not JSON never gets here (see `requireJsonBodies`).
    const what = metadata.type === 'param' ? (metadata.data ?? 'path') : metadata.type;
    return validate(this.schema, value ?? {}, what);
  }
}
