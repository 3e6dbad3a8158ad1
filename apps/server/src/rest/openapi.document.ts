import { ErrorCode, HTTP_STATUS, IdSchema, isRetryable } from '@seqline/protocol';
import { z } from 'zod';
import { API_ROUTES, REQUEST_SCHEMAS, RESPONSE_SCHEMAS, type ApiRoute, type RouteAccess, type RouteAnswer } from './openapi.routes.js';

type Json = Record<string, unknown>;

const ref = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });

const SECURITY: Record<RouteAccess, Json[]> = {
  admin: [{ apiKey: [] }, { bearer: [] }],
  read: [{ bearer: [] }, { accessToken: [] }, { apiKey: [] }],
  public: [],
};

/** What each code means, in the words of docs/protocol.md#errors; a new code must be described here too. */
const MEANINGS: Record<ErrorCode, string> = {
  BAD_FRAME: 'the body is not JSON, or not a JSON object',
  FRAME_TOO_LARGE: 'the body is over `LIMIT_FRAME_BYTES`',
  VALIDATION_FAILED: 'a field or parameter is missing or of the wrong form (the message names it)',
  BAD_CURSOR: 'a cursor that is malformed, ahead of the log, or of another conversation',
  CURSOR_EXPIRED: 'the log no longer holds the events after the cursor',
  UNKNOWN_CONVERSATION: 'no such conversation',
  CONVERSATION_EXISTS: 'the id is taken',
  UNKNOWN_MESSAGE: 'no such message',
  MESSAGE_EXISTS: 'the message id was used by another author, or posted with other text',
  MESSAGE_FINISHED: 'the message already ended',
  PART_OUT_OF_ORDER: 'an append that skips ahead',
  PART_CONFLICT: 'a part already applied with other text',
  FENCED: 'another producer took the answer over',
  DELTA_TOO_LARGE: 'an append over `LIMIT_DELTA_CHARS`',
  MESSAGE_TOO_LARGE: 'the text is over `LIMIT_MESSAGE_CHARS`',
  NOT_SUBSCRIBED: 'not subscribed to that conversation',
  TOO_MANY_SUBSCRIPTIONS: 'over `LIMIT_SUBSCRIPTIONS_PER_SOCKET`',
  NOT_FOUND: 'no such route',
  UNAUTHORIZED: 'no credentials, or a refused token or API key',
  FORBIDDEN: 'the token does not grant this (a device token on an admin route, or no right on the conversation)',
  ORIGIN_NOT_ALLOWED: 'a browser page whose origin is not in `ALLOWED_ORIGINS`',
  RATE_LIMITED: 'over a rate or connection limit; retry with back-off',
  UNAVAILABLE: 'a dependency failed (the log or Postgres); retry with back-off',
  INTERNAL: 'a bug; the server log has the details',
};

const DESCRIPTION = `Admin REST and device streams of Seqline: resumable, multi-device LLM conversations.

The full contract, with the WebSocket protocol and the agents' NATS subjects, is docs/protocol.md. Every error answers \`{ "code", "message" }\` with a stable code; a retryable one (\`RATE_LIMITED\`, \`UNAVAILABLE\`) also carries \`Retry-After\`. A route that does not exist answers \`404 NOT_FOUND\`.

With authentication on (\`AUTH_JWT_SECRET\`, \`AUTH_JWKS_URL\` or \`ADMIN_API_KEYS\`), routes need the credentials listed on them; without it, the service runs open and none are needed. A browser page on an origin outside \`ALLOWED_ORIGINS\` (other than the service's own) is refused \`403 ORIGIN_NOT_ALLOWED\` on every route.`;

/** The OpenAPI 3.1 description of the REST API, built from the route table and the protocol's zod schemas. */
export function buildOpenApiDocument(): Json {
  const paths: Record<string, Record<string, Json>> = {};
  for (const route of API_ROUTES) (paths[route.path] ??= {})[route.method] = operation(route);
  return {
    openapi: '3.1.0',
    info: { title: 'Seqline', version: '1', description: DESCRIPTION, license: { name: 'Apache-2.0', identifier: 'Apache-2.0' } },
    tags: [
      { name: 'conversations', description: 'Admin: conversations, history, posting' },
      { name: 'devices', description: 'Devices: the SSE stream (the WebSocket at /v1/ws is described in docs/protocol.md)' },
      { name: 'tokens', description: 'App backends: device tokens' },
      { name: 'operations', description: 'Health and metrics' },
      { name: 'description', description: 'This description' },
    ],
    paths,
    components: {
      schemas: { ...namedSchemas(REQUEST_SCHEMAS, 'input'), ...namedSchemas(RESPONSE_SCHEMAS, 'output') },
      securitySchemes: {
        apiKey: { type: 'apiKey', in: 'header', name: 'x-api-key', description: 'an admin API key (its SHA-256 hash is in ADMIN_API_KEYS)' },
        bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'a device or admin token' },
        accessToken: { type: 'apiKey', in: 'query', name: 'access_token', description: 'a token in the URL, for EventSource, which cannot set headers (see docs/security.md)' },
      },
    },
  };
}

function operation(route: ApiRoute): Json {
  const parameters: Json[] = [];
  if (route.path.includes('{id}')) parameters.push({ name: 'id', in: 'path', required: true, description: 'conversation id', schema: jsonSchema(IdSchema, 'input'), example: route.id });
  for (const parameter of route.parameters ?? []) {
    parameters.push({
      name: parameter.name,
      in: parameter.in,
      required: !parameter.schema.safeParse(undefined).success,
      description: parameter.description,
      schema: jsonSchema(parameter.schema, 'input'),
      ...(parameter.example === undefined ? {} : { example: parameter.example }),
    });
  }
  return {
    operationId: route.operationId,
    tags: [route.tag],
    summary: route.summary,
    ...(route.description ? { description: route.description } : {}),
    security: SECURITY[route.access],
    ...(parameters.length ? { parameters } : {}),
    ...(route.body ? { requestBody: { required: !route.body.optional, content: { 'application/json': { schema: ref(route.body.schema), example: route.body.example } } } } : {}),
    responses: { ...Object.fromEntries(route.answers.map((answer) => [String(answer.status), response(answer)])), ...errorResponses(route) },
  };
}

function response(answer: RouteAnswer): Json {
  if (answer.schema) return { description: answer.description, content: { 'application/json': { schema: ref(answer.schema) } } };
  const schema = answer.mediaType === 'application/json' ? { type: 'object' } : { type: 'string' };
  return { description: answer.description, content: { [answer.mediaType ?? 'application/json']: { schema } } };
}

/** Every error the route may answer, one response per HTTP status, each naming its codes. */
function errorResponses(route: ApiRoute): Record<string, Json> {
  const codes = new Set<ErrorCode>(route.errors);
  if (route.access !== 'public') [ErrorCode.Unauthorized, ErrorCode.Forbidden].forEach((code) => codes.add(code));
  if (route.body) [ErrorCode.BadFrame, ErrorCode.ValidationFailed, ErrorCode.FrameTooLarge].forEach((code) => codes.add(code));
  if (route.path.includes('{id}')) codes.add(ErrorCode.ValidationFailed);
  codes.add(ErrorCode.OriginNotAllowed);
  codes.add(ErrorCode.Internal);
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of Object.values(ErrorCode)) {
    if (codes.has(code)) byStatus.set(HTTP_STATUS[code], [...(byStatus.get(HTTP_STATUS[code]) ?? []), code]);
  }
  const responses: Record<string, Json> = {};
  for (const [status, list] of [...byStatus].sort(([a], [b]) => a - b)) {
    if (route.answers.some((answer) => answer.status === status)) throw new Error(`${route.operationId}: ${status} is both an answer and an error`);
    responses[String(status)] = {
      description: list.map((code) => `\`${code}\`: ${MEANINGS[code]}`).join('; '),
      ...(list.some(isRetryable) ? { headers: { 'Retry-After': { description: 'seconds to wait before trying again', schema: { type: 'integer' } } } } : {}),
      content: { 'application/json': { schema: { allOf: [ref('ErrorBody'), { properties: { code: { enum: list } } }] } } },
    };
  }
  return responses;
}

function namedSchemas(schemas: Record<string, z.ZodType>, io: 'input' | 'output'): Record<string, Json> {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(schemas)) registry.add(schema, { id });
  const { schemas: converted } = z.toJSONSchema(registry, { io, uri: (id) => `#/components/schemas/${id}` });
  return Object.fromEntries(Object.entries(converted).map(([id, schema]) => [id, bare(schema as Json)]));
}

function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): Json {
  return bare(z.toJSONSchema(schema, { io }) as Json);
}

/** Without `$schema` and `$id`: OpenAPI 3.1 gives its schemas their dialect, and names them by where they stand. */
function bare(schema: Json): Json {
  const { $schema: _dialect, $id: _id, ...rest } = schema;
  return rest;
}
