/**
 * Waits for `promise` to settle, or for `ms` to pass, whichever comes first; never rejects. For a
 * shutdown that should let work under way finish, but not wait through request timeouts for it
 * while NATS is away. The timer never outlives the wait.
 */
export async function waitAtMost(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const elapsed = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
  try {
    await Promise.race([promise.catch(() => undefined), elapsed]);
  } finally {
    clearTimeout(timer);
  }
}
