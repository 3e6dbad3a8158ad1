import { request, type ClientRequest } from 'node:http';

export interface SseFrame {
  id?: string;
  event?: string;
  data: string;
}

/** An open `text/event-stream` response, read as it arrives: its status, its frames, and whether the server ended it. */
export class SseStream {
  readonly frames: SseFrame[] = [];
  status = 0;
  contentType?: string;
  /** The response body, for a refusal (anything but 200). */
  body = '';
  /** Set once the server ended the response (or the connection closed). */
  endedAt?: number;
  /** Checks waiting in `until`, run as frames arrive. */
  private waiters: (() => void)[] = [];
  private constructor(
    private readonly req: ClientRequest,
    private readonly ended: Promise<void>,
  ) {}

  /** Opens `url` and resolves once the response's status and headers have arrived. */
  static open(url: string, headers: Record<string, string> = {}): Promise<SseStream> {
    return new Promise((resolve, reject) => {
      let markEnded!: () => void;
      const ended = new Promise<void>((done) => (markEnded = done));
      const req = request(url, { headers: { accept: 'text/event-stream', ...headers } }, (res) => {
        stream.status = res.statusCode!;
        stream.contentType = res.headers['content-type'];
        let buffer = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (stream.status !== 200) {
            stream.body += chunk;
            return;
          }
          buffer += chunk;
          for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
            const frame: SseFrame = { data: '' };
            for (const line of buffer.slice(0, end).split('\n')) {
              if (line.startsWith('id: ')) frame.id = line.slice(4);
              else if (line.startsWith('event: ')) frame.event = line.slice(7);
              else if (line.startsWith('data: ')) frame.data += line.slice(6);
            }
            buffer = buffer.slice(end + 2);
            if (frame.data) stream.frames.push(frame);
          }
          stream.notify();
        });
        const finish = () => {
          stream.endedAt ??= Date.now();
          markEnded();
        };
        res.on('end', finish);
        res.on('close', finish);
        resolve(stream);
      });
      // The callbacks above run on later turns, once `stream` is set.
      const stream = new SseStream(req, ended);
      req.on('error', (error) => {
        if (stream.status === 0) reject(error);
        stream.endedAt ??= Date.now();
        markEnded();
      });
      req.end();
    });
  }

  /** Resolves once the server has ended the stream; rejects if it has not within `ms`. */
  async untilEnded(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`the SSE stream was still open after ${ms} ms`)), ms)));
    try {
      await Promise.race([this.ended, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Resolves once `predicate` holds for what has arrived; rejects if it has not within `ms`. */
  until(predicate: () => boolean, ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the SSE stream did not reach the expected frames within ${ms} ms`)), ms);
      const check = () => {
        if (!predicate()) return this.waiters.push(check);
        clearTimeout(timer);
        resolve();
      };
      check();
    });
  }

  private notify(): void {
    const waiting = this.waiters;
    this.waiters = [];
    for (const check of waiting) check();
  }

  /** Drops the connection from this side (as a closed tab does). */
  close(): void {
    this.req.destroy();
  }
}
