-- Typed parts of a message (text, reasoning, tool calls, data), kept in the message's own row.
ALTER TABLE "messages" ADD COLUMN "blocks" JSONB NOT NULL DEFAULT '[]';
