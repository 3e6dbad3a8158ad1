// Prints the SQL that creates the whole current schema from an empty database: a reference to
// write a migration from, not a migration (applied to a database with the earlier migrations it
// fails on tables that exist). A new migration holds only what changed since the last one.
// Usage: DATABASE_URL=postgres://... tsx scripts/migration-sql.ts
import { diffFromEmpty } from '../libs/persistence/src/migrator.js';

const sql = await diffFromEmpty({ databaseUrl: process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres', prismaDir: 'prisma' });
process.stdout.write(sql);
