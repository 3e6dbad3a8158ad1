/**
 * A position in one conversation's log: the JetStream stream sequence of an event (`seq`)
 * plus the log's `epoch`, which changes when the log is recreated. Written `<epoch>-<seq>`.
 * `seq` 0 means "before the first event".
 */
export interface Cursor {
  epoch: string;
  seq: number;
}

const CURSOR_PATTERN = /^([0-9a-z]{1,16})-(0|[1-9][0-9]{0,15})$/;

export function formatCursor(cursor: Cursor): string {
  return `${cursor.epoch}-${cursor.seq}`;
}

/** Returns undefined when `text` is not a cursor; callers turn that into `BAD_CURSOR`. */
export function parseCursor(text: string): Cursor | undefined {
  const match = CURSOR_PATTERN.exec(text);
  if (!match) return undefined;
  const seq = Number(match[2]);
  if (!Number.isSafeInteger(seq)) return undefined;
  return { epoch: match[1]!, seq };
}

/** The epoch of a log created at `createdAt` (the stream's creation time). */
export function epochOf(createdAt: Date): string {
  return createdAt.getTime().toString(36);
}

/** Whether epoch `a` is of a log created before that of epoch `b`. */
export function epochIsBefore(a: string, b: string): boolean {
  return parseInt(a, 36) < parseInt(b, 36);
}
