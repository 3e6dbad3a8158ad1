-- The reaper looks for streaming answers that went silent every few seconds: an index of only
-- those rows keeps that a small read however many finished messages the table holds.
CREATE INDEX "messages_streaming_updated_at_idx" ON "messages" ("updated_at") WHERE "status" = 'streaming';
