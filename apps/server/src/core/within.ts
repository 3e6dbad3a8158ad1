/**
 * `promise`, or a rejection once `ms` have passed (the timer never outlives the answer): with
 * `timedOut()`'s error when given, else a plain one.
 */
export function within<T>(promise: Promise<T>, ms: number, timedOut: () => Error = () => new Error(`no answer in ${ms} ms`)): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(timedOut()), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
