-- The row of a streaming answer is rewritten on every flush, and its text, part lengths and
-- blocks are long enough to be compressed each time: lz4 does that for about half the CPU
-- Postgres spent with pglz. It applies to values written from now on. Needs Postgres 14 or
-- later built with lz4, as the official packages and images are.
ALTER TABLE "messages" ALTER COLUMN "text" SET COMPRESSION lz4, ALTER COLUMN "part_lengths" SET COMPRESSION lz4, ALTER COLUMN "blocks" SET COMPRESSION lz4;
