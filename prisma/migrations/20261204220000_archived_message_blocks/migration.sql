-- Archived messages keep their typed parts (as stored: fragments that readers fold), like messages.
ALTER TABLE "archived_messages" ADD COLUMN "blocks" JSONB NOT NULL DEFAULT '[]';
