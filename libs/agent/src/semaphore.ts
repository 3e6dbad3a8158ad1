/** Bounds how many of something run at once (commands in flight, prompt handlers). Waiters are served in order. */
export class Semaphore {
  private readonly waiting: Array<{ count: number; resolve: () => void }> = [];
  private available: number;

  constructor(readonly size: number) {
    this.available = size;
  }

  /** Takes `count` permits at once (at most `size`); a larger request behind it waits its turn, and so do smaller ones after it. */
  async acquire(count = 1): Promise<void> {
    // It would wait forever, and every waiter after it.
    if (count > this.size) throw new RangeError(`${count} permits asked of a semaphore of ${this.size}`);
    if (this.waiting.length === 0 && this.available >= count) {
      this.available -= count;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push({ count, resolve }));
  }

  release(count = 1): void {
    this.available += count;
    while (this.waiting.length > 0 && this.available >= this.waiting[0]!.count) {
      const next = this.waiting.shift()!;
      this.available -= next.count;
      next.resolve();
    }
  }
}
