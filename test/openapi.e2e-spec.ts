import { createHash } from 'node:crypto';
import { Validator } from '@seriousme/openapi-schema-validator';
import { ErrorCode } from '@seqline/protocol';
import { launchBrowser, useSeqline } from '@seqline/testing';
import { Ajv2020 } from 'ajv/dist/2020.js';

const ADMIN_KEY = 'admin-key-for-tests';

interface Parameter {
  name: string;
  in: 'path' | 'query' | 'header';
  example?: string;
}
interface Media {
  schema: Record<string, unknown>;
  example?: unknown;
}
interface Operation {
  operationId: string;
  security: Record<string, string[]>[];
  parameters?: Parameter[];
  requestBody?: { required: boolean; content: Record<string, Media> };
  responses: Record<string, { content?: Record<string, Media> }>;
}
interface Document {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: Record<string, unknown>;
}

/** The description checked against the running server: it validates, names exactly the routes the server registered, and every route answers as it says. */
describe('OpenAPI description', () => {
  const seqline = useSeqline({ AUTH_JWT_SECRET: 'test-secret-that-is-long-enough-for-hs256!', ADMIN_API_KEYS: createHash('sha256').update(ADMIN_KEY).digest('hex') });
  let document: Document;
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  /** Operations in the order the document lists them, as a reader would try them. */
  const operations = () => Object.entries(document.paths).flatMap(([path, item]) => Object.entries(item).map(([method, operation]) => ({ path, method, operation })));

  beforeAll(async () => {
    const response = await fetch(`${seqline.server.url}/v1/openapi.json`);
    expect(response.headers.get('content-type')).toBe('application/json; charset=utf-8');
    document = (await response.json()) as Document;
  });

  /** Checks `body` against a schema of the document, whose references point into the document's components. */
  function conforms(schema: Record<string, unknown>, body: unknown): string[] {
    const validate = ajv.compile({ ...schema, components: document.components });
    return validate(body) ? [] : ajv.errorsText(validate.errors).split(', ');
  }

  /** Sends an operation's request, built from the document's examples. */
  async function send(path: string, method: string, operation: Operation, options: { id?: string; credentials?: boolean; headers?: Record<string, string> } = {}): Promise<Response> {
    let url = path;
    const query = new URLSearchParams();
    for (const parameter of operation.parameters ?? []) {
      if (parameter.in === 'path') url = url.replace(`{${parameter.name}}`, options.id ?? parameter.example!);
      if (parameter.in === 'query' && parameter.example !== undefined) query.set(parameter.name, parameter.example);
    }
    const media = operation.requestBody?.content['application/json'];
    const headers: Record<string, string> = { ...(media ? { 'content-type': 'application/json' } : {}), ...(options.credentials !== false && operation.security.length ? { 'x-api-key': ADMIN_KEY } : {}), ...options.headers };
    return fetch(`${seqline.server.url}${url}${query.size ? `?${query}` : ''}`, { method: method.toUpperCase(), headers, body: media ? JSON.stringify(media.example) : undefined });
  }

  /** Reads an answer and checks it against what the operation documents for its status. */
  async function expectDocumented(operation: Operation, response: Response): Promise<unknown> {
    const documented = operation.responses[String(response.status)];
    expect({ operation: operation.operationId, status: response.status, documented: documented !== undefined }).toEqual({ operation: operation.operationId, status: response.status, documented: true });
    const type = response.headers.get('content-type')!.split(';')[0]!;
    const media = documented!.content?.[type];
    expect({ operation: operation.operationId, type, documented: Object.keys(documented!.content ?? {}) }).toEqual({ operation: operation.operationId, type, documented: [type] });
    if (type === 'text/event-stream') {
      await response.body!.cancel();
      return undefined;
    }
    const body: unknown = type === 'application/json' ? await response.json() : await response.text();
    expect({ operation: operation.operationId, errors: conforms(media!.schema, body) }).toEqual({ operation: operation.operationId, errors: [] });
    return body;
  }

  it('is a valid OpenAPI 3.1 document', async () => {
    const validator = new Validator();
    expect(await validator.validate(document as unknown as Record<string, unknown>)).toEqual({ valid: true });
    expect(validator.version).toBe('3.1');
    for (const [name, schema] of Object.entries((document.components as { schemas: Record<string, object> }).schemas)) {
      expect({ name, valid: ajv.validateSchema(schema) }).toEqual({ name, valid: true });
    }
  });

  it('describes every route the server registered, and no other', () => {
    const express = seqline.server.app.getHttpAdapter().getInstance() as { router: { stack: { route?: { path: string; methods: Record<string, boolean> } }[] } };
    const registered = express.router.stack.flatMap((layer) => (layer.route ? Object.keys(layer.route.methods).map((method) => `${method.toUpperCase()} ${layer.route!.path.replace(/:(\w+)/g, '{$1}')}`) : []));
    const documented = operations().map(({ path, method }) => `${method.toUpperCase()} ${path}`);
    expect(registered.length).toBeGreaterThan(10);
    expect(documented.sort()).toEqual(registered.sort());
  });

  it('every route answers its example as documented', async () => {
    const answered: string[] = [];
    for (const { path, method, operation } of operations()) {
      const response = await send(path, method, operation);
      const success = Object.keys(operation.responses).find((status) => status.startsWith('2'))!;
      expect({ operation: operation.operationId, status: String(response.status) }).toEqual({ operation: operation.operationId, status: success });
      await expectDocumented(operation, response);
      answered.push(operation.operationId);
    }
    expect(answered).toContain('streamConversation');
  });

  it('a request body the document marks optional may be left out, and one it marks required may not', async () => {
    const withBodies = operations().filter(({ operation }) => operation.requestBody);
    expect(withBodies.length).toBeGreaterThan(1);
    for (const { path, operation } of withBodies) {
      const url = path.replace('{id}', 'openapi-no-body');
      if (path.includes('{id}')) await fetch(`${seqline.server.url}/v1/conversations`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': ADMIN_KEY }, body: JSON.stringify({ id: 'openapi-no-body' }) });
      const response = await fetch(`${seqline.server.url}${url}`, { method: 'POST', headers: { 'x-api-key': ADMIN_KEY } });
      const required = operation.requestBody!.required;
      expect({ operation: operation.operationId, required, status: response.status }).toEqual({ operation: operation.operationId, required, status: required ? 400 : 201 });
    }
  });

  it('every route that needs credentials refuses none, and each error answer is one it documents', async () => {
    for (const { path, method, operation } of operations()) {
      if (!operation.security.length) continue;
      const response = await send(path, method, operation, { credentials: false });
      expect({ operation: operation.operationId, status: response.status }).toEqual({ operation: operation.operationId, status: 401 });
      expect(await expectDocumented(operation, response)).toMatchObject({ code: ErrorCode.Unauthorized });
    }
    for (const { path, method, operation } of operations()) {
      const unknown = operation.parameters?.some((parameter) => parameter.in === 'path');
      const response = await send(path, method, operation, unknown ? { id: 'no-such-conversation' } : { headers: { origin: 'https://evil.example.com' } });
      const code = unknown ? ErrorCode.UnknownConversation : ErrorCode.OriginNotAllowed;
      expect({ operation: operation.operationId, body: await expectDocumented(operation, response) }).toMatchObject({ operation: operation.operationId, body: { code } });
    }
  });

  it('/docs shows every operation and every schema, with nothing loaded from elsewhere', async () => {
    const browser = await launchBrowser();
    try {
      const page = await browser.newPage();
      const foreign: string[] = [];
      page.on('request', (request) => {
        if (!request.url().startsWith(seqline.server.url)) foreign.push(request.url());
      });
      await page.goto(`${seqline.server.url}/docs`);
      await page.waitForSelector('details#createConversation');
      const shown = await page.$$eval('details[id]', (nodes) => nodes.map((node) => node.id));
      const schemas = Object.keys((document.components as { schemas: object }).schemas).map((name) => `schema-${name}`);
      expect(shown.sort()).toEqual([...operations().map(({ operation }) => operation.operationId), ...schemas].sort());
      await page.click('details#postMessage > summary');
      expect(await page.textContent('details#postMessage')).toContain('MESSAGE_EXISTS');
      expect(foreign).toEqual([]);
    } finally {
      await browser.close();
    }
  });
});
