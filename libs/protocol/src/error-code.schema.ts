import { z } from 'zod';
import { ErrorCode } from './errors.js';

/** The protocol's error codes as a schema, for frames and replies that carry one. */
export const ErrorCodeSchema = z.enum(Object.values(ErrorCode) as [ErrorCode, ...ErrorCode[]]);
