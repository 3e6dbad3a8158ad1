/** Bounds how many of something run at once (publishes in flight, prompt handlers). */
export class Semaphore {
  private waiting: (() => void)[] = [];
  private available: number;

  constructor(readonly size: number) {
    this.available = size;
  }

  async acquire(): Promise<void> {
    if (this.available > 0) {
      this.available--;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.available++;
  }
}
