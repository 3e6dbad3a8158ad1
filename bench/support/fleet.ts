import { fork, type ChildProcess } from 'node:child_process';

export type FleetRequest =
  | { cmd: 'connect'; url: string; conversations: string[]; concurrency: number }
  | { cmd: 'complete'; messageId: string; timeoutMs: number }
  | { cmd: 'drop'; withinMs: number; afterEvents: number }
  | { cmd: 'forget' }
  | { cmd: 'close' };

export type FleetReply =
  | { type: 'connected'; ok: boolean; ms: number; openMs: number }
  | {
      type: 'completed';
      ok: boolean;
      /** When the last device saw the message completed (epoch ms, as `now()`); NaN if one never did. */
      completedAt: number;
      hashes: Record<string, number>;
      /** sha1 of each conversation's text, as its first device has it. */
      texts: Record<string, string>;
      violations: number;
      samples: number;
      p50: number;
      p99: number;
      max: number;
      /** The same, for the newest token of each appended event only: the append's own way to the device, without the token's wait for it. */
      newestTokenP50: number;
      newestTokenP99: number;
      /** Drop → `subscribed` again, per device that was dropped. */
      resubscribes: number;
      resubscribeP50: number;
      resubscribeP99: number;
    }
  | { type: 'dropping' }
  | { type: 'forgotten' }
  | { type: 'closed' }
  | { type: 'failed'; message: string };

/** WebSocket devices in a separate process (see fleet-worker.ts). */
export class DeviceFleet {
  private readonly child: ChildProcess;

  constructor() {
    this.child = fork(new URL('./fleet-worker.js', import.meta.url), { stdio: 'inherit' });
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Connects one device per entry of `conversations`, each subscribing without a cursor; resolves once all are subscribed. */
  connect(url: string, conversations: string[], concurrency = 250): Promise<Extract<FleetReply, { type: 'connected' }>> {
    return this.ask({ cmd: 'connect', url, conversations, concurrency }) as Promise<Extract<FleetReply, { type: 'connected' }>>;
  }

  /** Waits until every device has `messageId` completed; returns text hashes, chain violations and latency figures. */
  complete(messageId: string, timeoutMs: number): Promise<Extract<FleetReply, { type: 'completed' }>> {
    return this.ask({ cmd: 'complete', messageId, timeoutMs }) as Promise<Extract<FleetReply, { type: 'completed' }>>;
  }

  /**
   * Each device, once it has `afterEvents` events, drops its connection at a random moment within
   * `withinMs` (as a phone changing networks does) and resumes at once from its cursor.
   */
  drop(withinMs: number, afterEvents: number): Promise<void> {
    return this.ask({ cmd: 'drop', withinMs, afterEvents }).then(() => undefined);
  }

  /** Forgets the latency and resubscribe samples taken so far: what follows is measured alone. */
  forget(): Promise<void> {
    return this.ask({ cmd: 'forget' }).then(() => undefined);
  }

  async close(): Promise<void> {
    await this.ask({ cmd: 'close' });
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill();
    await exited;
  }

  private ask(request: FleetRequest): Promise<FleetReply> {
    return new Promise((resolve, reject) => {
      this.child.once('message', (reply: FleetReply) => (reply.type === 'failed' ? reject(new Error(reply.message)) : resolve(reply)));
      this.child.send(request);
    });
  }
}
