-- An answer's producer (fencing) and the length of each applied part (exact idempotency of appends).
ALTER TABLE "messages" ADD COLUMN "part_lengths" INTEGER[] NOT NULL DEFAULT ARRAY[]::INTEGER[];
ALTER TABLE "messages" ADD COLUMN "producer_id" TEXT;
ALTER TABLE "messages" ADD COLUMN "producer_epoch" INTEGER NOT NULL DEFAULT 1;
