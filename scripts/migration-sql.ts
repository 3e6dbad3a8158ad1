// Prints the SQL that creates the current schema from an empty database.
// Usage: DATABASE_URL=postgres://... tsx scripts/migration-sql.ts > prisma/migrations/<ts>_<name>/migration.sql
import { diffFromEmpty } from '../libs/persistence/src/migrator.js';

const sql = await diffFromEmpty({ databaseUrl: process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres', prismaDir: 'prisma' });
process.stdout.write(sql);
