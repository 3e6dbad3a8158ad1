-- The log epoch each watermark counts in, holes found between the log and Postgres, and rows kept from older epochs.
ALTER TABLE "conversations" ADD COLUMN "log_epoch" TEXT;

CREATE TABLE "log_holes" (
    "id" BIGSERIAL NOT NULL,
    "conversation_id" TEXT NOT NULL,
    "log_epoch" TEXT NOT NULL,
    "after_seq" BIGINT NOT NULL,
    "until_seq" BIGINT NOT NULL,
    "reason" TEXT NOT NULL,
    "detected_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "log_holes_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "log_holes_conversation_id_idx" ON "log_holes"("conversation_id");
ALTER TABLE "log_holes" ADD CONSTRAINT "log_holes_conversation_id_fkey" FOREIGN KEY ("conversation_id") REFERENCES "conversations"("id") ON DELETE CASCADE ON UPDATE CASCADE;

CREATE TABLE "archived_messages" (
    "conversation_id" TEXT NOT NULL,
    "log_epoch" TEXT NOT NULL,
    "id" TEXT NOT NULL,
    "author_role" TEXT NOT NULL,
    "author_id" TEXT NOT NULL,
    "status" TEXT NOT NULL,
    "text" TEXT NOT NULL,
    "error" TEXT,
    "created_seq" BIGINT NOT NULL,
    "created_at" TIMESTAMP(3) NOT NULL,
    "updated_at" TIMESTAMP(3) NOT NULL,
    "archived_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "archived_messages_pkey" PRIMARY KEY ("conversation_id","log_epoch","id")
);
