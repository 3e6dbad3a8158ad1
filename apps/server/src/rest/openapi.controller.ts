import { Controller, Get, Header } from '@nestjs/common';
import { DOCS_PAGE } from './docs.page.js';
import { buildOpenApiDocument } from './openapi.document.js';

/** The REST API's OpenAPI description, and a page to read it in; public, since it holds no data. */
@Controller()
export class OpenApiController {
  private readonly document = buildOpenApiDocument();

  @Get('v1/openapi.json')
  description(): Record<string, unknown> {
    return this.document;
  }

  @Get('docs')
  @Header('content-type', 'text/html; charset=utf-8')
  page(): string {
    return DOCS_PAGE;
  }
}
