import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from './generated/client.js';
import { schemaOf } from './schema-engine.js';

/** The Prisma client, over the `pg` driver; only repositories use it. */
export class PrismaService extends PrismaClient {
  constructor(url: string) {
    super({ adapter: new PrismaPg({ connectionString: url, max: 25 }, { schema: schemaOf(url) }) });
  }
}
