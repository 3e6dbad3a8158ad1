-- Producers an answer was taken over from: a start retried by one of them after the take-over is fenced instead of taking the answer back.
ALTER TABLE "messages" ADD COLUMN "former_producers" TEXT[] NOT NULL DEFAULT ARRAY[]::TEXT[];
