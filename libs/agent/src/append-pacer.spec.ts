import { AppendPacer } from './append-pacer.js';

/** A pacer on a clock the test moves: `samples` round trips, one every `everyMs`. */
function drive(pacer: AppendPacer, clock: { now: number }, roundTripMs: number, samples: number, everyMs = 2): void {
  for (let i = 0; i < samples; i++) {
    clock.now += everyMs;
    pacer.observe(roundTripMs);
  }
}

describe('AppendPacer', () => {
  it('holds nothing while round trips stay near their floor', () => {
    const clock = { now: 0 };
    const pacer = new AppendPacer(() => clock.now);
    drive(pacer, clock, 2, 500);
    drive(pacer, clock, 12, 500);
    expect(pacer.holdMs()).toBe(0);
  });

  it('holds appends back once round trips climb well above the floor, up to 50 ms, and lets go when they fall', () => {
    const clock = { now: 0 };
    const pacer = new AppendPacer(() => clock.now);
    drive(pacer, clock, 2, 100);
    // 30 ms: 13 ms over the allowed 2 + 15; a tenth of a second turns into about 13 ms of hold.
    drive(pacer, clock, 30, 50);
    expect(pacer.holdMs()).toBeGreaterThan(8);
    expect(pacer.holdMs()).toBeLessThan(14);
    drive(pacer, clock, 30, 1_000);
    expect(pacer.holdMs()).toBe(50);
    drive(pacer, clock, 2, 1_000);
    expect(pacer.holdMs()).toBe(0);
  });

  it('takes a distant service for what it is: a high but steady round trip is no reason to hold', () => {
    const clock = { now: 0 };
    const pacer = new AppendPacer(() => clock.now);
    drive(pacer, clock, 80, 200, 80);
    drive(pacer, clock, 150, 200, 80);
    expect(pacer.holdMs()).toBe(0);
  });

  it('follows a floor that moved up: the old floor is forgotten within two windows', () => {
    const clock = { now: 0 };
    const pacer = new AppendPacer(() => clock.now);
    drive(pacer, clock, 1, 100);
    // The agent now reaches the service over a slower network: 40 ms is its new floor, not a queue.
    drive(pacer, clock, 40, 1_000, 12);
    expect(pacer.holdMs()).toBe(0);
  });

  it('keeps holding under a sustained load: the queue it keeps short does not raise the floor', () => {
    const clock = { now: 0 };
    const pacer = new AppendPacer(() => clock.now);
    drive(pacer, clock, 2, 100);
    // A saturated service: without a hold replies take 60 ms, and each millisecond of hold takes one off the queue.
    for (let i = 0; i < 30_000; i++) {
      clock.now += 2;
      pacer.observe(Math.max(2, 60 - pacer.holdMs()) * (0.9 + 0.2 * ((i * 7919) % 100) / 100));
    }
    // 60 s later the hold still keeps the round trip near floor + 15 ms.
    expect(pacer.holdMs()).toBeGreaterThan(35);
    expect(pacer.holdMs()).toBeLessThan(50);
  });

  it('starts again after a silence: an idle service that was saturated before holds nothing', () => {
    const clock = { now: 0 };
    const pacer = new AppendPacer(() => clock.now);
    drive(pacer, clock, 2, 100);
    drive(pacer, clock, 200, 1_000);
    expect(pacer.holdMs()).toBe(50);
    clock.now += 600_000;
    drive(pacer, clock, 2, 1);
    expect(pacer.holdMs()).toBe(0);
  });
});
