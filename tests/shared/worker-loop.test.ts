/**
 * The kit's worker loop, driven by fake timers: the tests fire each scheduled round themselves and
 * read the delays the loop asked for, so nothing waits on a wall clock. One test runs on real timers.
 */
import { createLogger } from '@shared/log.ts';
import { createWorkerLoop, errorText, type LoopTimers, type WorkerLoopOptions } from '@shared/worker-loop.ts';
import { describe, expect, it } from 'bun:test';

/** Timers that only fire when told, recording every delay asked for. */
function fakeTimers() {
  let lastId = 0;
  const pending = new Map<number, { callback: () => void; ms: number }>();
  const requested: number[] = [];
  let waiters: (() => void)[] = [];
  const nextScheduled = () => new Promise<void>((resolve) => waiters.push(resolve));
  /** Fires the one pending timer. */
  const fire = () => {
    expect(pending.size).toBe(1);
    const [id, timer] = [...pending.entries()][0]!;
    pending.delete(id);
    timer.callback();
  };
  const timers: LoopTimers = {
    setTimeout(callback, ms) {
      const id = ++lastId;
      pending.set(id, { callback, ms });
      requested.push(ms);
      const woken = waiters;
      waiters = [];
      for (const wake of woken) wake();
      return id;
    },
    clearTimeout(handle) {
      pending.delete(handle as number);
    },
  };
  return {
    timers,
    /** Every delay the loop has asked for, in order. */
    requested,
    /** The delays of the timers now pending. */
    pendingDelays: () => [...pending.values()].map((t) => t.ms),
    /** Resolves when the loop next sets a timer (e.g. after a round has finished). */
    nextScheduled,
    fire,
    /** Fires the pending timer and resolves once the loop has set its next one (the round finished). */
    async runRound() {
      const next = nextScheduled();
      fire();
      await next;
    },
  };
}

/** Lets pending promise callbacks run; stands in for "enough time for a broken stop() to resolve". */
const settle = () => Bun.sleep(0);

function makeLoop(overrides: Partial<WorkerLoopOptions> & Pick<WorkerLoopOptions, 'round'>, lines: Record<string, unknown>[] = []) {
  const clock = fakeTimers();
  const loop = createWorkerLoop({
    name: 'test-loop',
    logger: createLogger({ level: 'debug', sink: (line) => lines.push(JSON.parse(line)) }),
    intervalMs: 1_000,
    timers: clock.timers,
    ...overrides,
  });
  return { loop, clock, lines };
}

/** A round that counts its calls and reports each one. */
function countingRound(result: () => 'again' | void = () => undefined) {
  const state = { calls: 0 };
  return {
    state,
    round: async () => {
      state.calls += 1;
      return result();
    },
  };
}

/**
 * A round whose first call resolves `entered` and then waits until `held` is resolved; the state counts
 * calls and the most rounds ever running at once.
 */
function firstRoundHeld(result: 'again' | void = undefined) {
  const held = Promise.withResolvers<void>();
  const entered = Promise.withResolvers<void>();
  const state = { calls: 0, running: 0, mostRunning: 0 };
  const round = async () => {
    state.calls += 1;
    state.running += 1;
    state.mostRunning = Math.max(state.mostRunning, state.running);
    try {
      if (state.calls === 1) {
        entered.resolve();
        await held.promise;
      }
      return result;
    } finally {
      state.running -= 1;
    }
  };
  return { held, entered, state, round };
}

describe('worker loop: scheduling', () => {
  it('runs nothing before start(), then the first round after initialDelayMs', async () => {
    const { state, round } = countingRound();
    const { loop, clock } = makeLoop({ round, initialDelayMs: 250 });
    expect(clock.pendingDelays()).toEqual([]);
    expect(loop.running).toBe(false);

    loop.start();
    expect(loop.running).toBe(true);
    expect(clock.pendingDelays()).toEqual([250]);
    expect(state.calls).toBe(0);

    await clock.runRound();
    expect(state.calls).toBe(1);
    await loop.stop();
  });

  it('waits intervalMs before the first round when no initialDelayMs is given', async () => {
    const { loop, clock } = makeLoop({ round: async () => {}, intervalMs: 5_000 });
    loop.start();
    expect(clock.pendingDelays()).toEqual([5_000]);
    await loop.stop();
  });

  it('runs a round every intervalMs, each scheduled after the previous one finished', async () => {
    const { state, round } = countingRound();
    const { loop, clock } = makeLoop({ round, initialDelayMs: 0, intervalMs: 1_000 });
    loop.start();
    for (let i = 1; i <= 3; i++) {
      await clock.runRound();
      expect(state.calls).toBe(i);
      expect(clock.pendingDelays()).toEqual([1_000]);
    }
    expect(clock.requested).toEqual([0, 1_000, 1_000, 1_000]);
    await loop.stop();
  });

  it("runs the next round at once after a round answered 'again', then returns to the interval", async () => {
    const answers: ('again' | void)[] = ['again', 'again', undefined];
    const { state, round } = countingRound(() => answers.shift());
    const { loop, clock } = makeLoop({ round, initialDelayMs: 0 });
    loop.start();
    for (let i = 0; i < 3; i++) {
      await clock.runRound();
    }
    expect(state.calls).toBe(3);
    expect(clock.requested).toEqual([0, 0, 0, 1_000]);
    await loop.stop();
  });

  it('ignores a second start() while running', async () => {
    const { loop, clock } = makeLoop({ round: async () => {} });
    loop.start();
    loop.start();
    expect(clock.pendingDelays()).toEqual([1_000]);
    expect(clock.requested).toHaveLength(1);
    await loop.stop();
  });
});

describe('worker loop: wake()', () => {
  it('while idle, replaces the pending interval with an immediate round', async () => {
    const { state, round } = countingRound();
    const { loop, clock } = makeLoop({ round, initialDelayMs: 0, intervalMs: 3_600_000 });
    loop.start();
    await clock.runRound();
    expect(clock.pendingDelays()).toEqual([3_600_000]);

    loop.wake();
    // The hour-long wait is gone, not merely joined by a second timer.
    expect(clock.pendingDelays()).toEqual([0]);
    await clock.runRound();
    expect(state.calls).toBe(2);
    expect(clock.pendingDelays()).toEqual([3_600_000]);
    await loop.stop();
  });

  it('during a round, runs one more round right after it however often it was called', async () => {
    const { held, entered, state, round } = firstRoundHeld();
    const { loop, clock } = makeLoop({ initialDelayMs: 0, intervalMs: 3_600_000, round });
    loop.start();
    clock.fire();
    await entered.promise;
    loop.wake();
    loop.wake();
    // No second round may start while the first is in flight.
    expect(clock.pendingDelays()).toEqual([]);

    const next = clock.nextScheduled();
    held.resolve();
    await next;
    expect(clock.pendingDelays()).toEqual([0]);
    await clock.runRound();
    expect(state.calls).toBe(2);
    // The wakes were used up by that one round: back to the interval.
    expect(clock.pendingDelays()).toEqual([3_600_000]);
    await loop.stop();
  });

  it('does nothing before start() or after stop()', async () => {
    const { state, round } = countingRound();
    const { loop, clock } = makeLoop({ round });
    loop.wake();
    expect(clock.pendingDelays()).toEqual([]);
    loop.start();
    await loop.stop();
    loop.wake();
    expect(clock.pendingDelays()).toEqual([]);
    expect(state.calls).toBe(0);
  });
});

describe('worker loop: stop()', () => {
  it('waits for the round in flight and schedules nothing after it', async () => {
    // Even a round asking for more must not outlive stop().
    const { held, entered, state, round } = firstRoundHeld('again');
    const { loop, clock } = makeLoop({ initialDelayMs: 0, round });
    loop.start();
    clock.fire();
    await entered.promise;

    let stopped = false;
    const stopping = loop.stop().then(() => (stopped = true));
    expect(loop.running).toBe(false);
    await settle();
    await settle();
    expect(stopped).toBe(false);

    held.resolve();
    await stopping;
    expect(stopped).toBe(true);
    expect(clock.pendingDelays()).toEqual([]);
    expect(state.calls).toBe(1);
  });

  it('while idle, cancels the pending round and resolves at once', async () => {
    const { state, round } = countingRound();
    const { loop, clock } = makeLoop({ round });
    loop.start();
    expect(clock.pendingDelays()).toEqual([1_000]);
    await loop.stop();
    expect(clock.pendingDelays()).toEqual([]);
    expect(state.calls).toBe(0);
  });

  it('can be started again, and a restart during the old round still leaves one round at a time', async () => {
    const { held, entered, state, round } = firstRoundHeld();
    const { loop, clock } = makeLoop({ initialDelayMs: 0, round });
    loop.start();
    clock.fire();
    await entered.promise;
    const stopping = loop.stop();
    loop.start();
    // The old round is still going: the restart must not start a second one beside it.
    expect(clock.pendingDelays()).toEqual([]);

    const next = clock.nextScheduled();
    held.resolve();
    await stopping;
    await next;
    expect(clock.pendingDelays()).toEqual([1_000]);
    await clock.runRound();
    expect(state.calls).toBe(2);
    expect(state.mostRunning).toBe(1);
    await loop.stop();
  });
});

describe('worker loop: failures', () => {
  it('logs a throwing round with the loop name and keeps going', async () => {
    let calls = 0;
    const { loop, clock, lines } = makeLoop({
      name: 'cleanup',
      initialDelayMs: 0,
      round: async () => {
        calls += 1;
        if (calls === 1) throw new Error('disk went away');
      },
    });
    loop.start();
    await clock.runRound();
    const failure = lines.find((l) => l.msg === 'cleanup round failed');
    expect(failure).toMatchObject({ level: 'error', loop: 'cleanup' });
    expect(failure!.error).toContain('disk went away');
    // A failed round waits for the interval like any other.
    expect(clock.pendingDelays()).toEqual([1_000]);

    await clock.runRound();
    expect(calls).toBe(2);
    expect(lines.filter((l) => l.msg === 'cleanup round failed')).toHaveLength(1);
    await loop.stop();
  });

  it('survives a round that throws before returning a promise', async () => {
    let calls = 0;
    const { loop, clock, lines } = makeLoop({
      initialDelayMs: 0,
      round: (() => {
        calls += 1;
        if (calls === 1) throw new Error('sync failure');
        return Promise.resolve();
      }) as WorkerLoopOptions['round'],
    });
    loop.start();
    await clock.runRound();
    expect(lines.some((l) => l.msg === 'test-loop round failed')).toBe(true);
    await clock.runRound();
    expect(calls).toBe(2);
    await loop.stop();
  });

  it('leaves the query parameters drizzle puts in its messages out of the log', async () => {
    const { loop, clock, lines } = makeLoop({
      initialDelayMs: 0,
      round: async () => {
        throw new Error('Failed query: update users set token = $1\nparams: secret-token-value');
      },
    });
    loop.start();
    await clock.runRound();
    await loop.stop();
    const failure = lines.find((l) => l.msg === 'test-loop round failed');
    expect(failure!.error).toBe('Error: Failed query: update users set token = $1');
    expect(JSON.stringify(lines)).not.toContain('secret-token-value');
    expect(errorText('plain')).toBe('plain');
  });
});

describe('worker loop: jitter', () => {
  async function delaysWith(jitter: number, draws: number[]) {
    const randoms = [...draws];
    const { loop, clock } = makeLoop({ round: async () => {}, initialDelayMs: 10, intervalMs: 1_000, jitter, random: () => randoms.shift()! });
    loop.start();
    for (let i = 0; i < draws.length; i++) {
      await clock.runRound();
    }
    await loop.stop();
    return clock.requested;
  }

  it('varies each wait by at most the jitter fraction of the interval, and not the first delay', async () => {
    const delays = await delaysWith(0.1, [0, 0.5, 0.999_999, 0.25]);
    expect(delays[0]).toBe(10);
    const waits = delays.slice(1);
    expect(waits[0]).toBe(900);
    expect(waits[1]).toBe(1_000);
    expect(waits[2]).toBeCloseTo(1_100, 0);
    expect(waits[3]).toBe(950);
    for (const wait of waits) {
      expect(wait).toBeGreaterThanOrEqual(900);
      expect(wait).toBeLessThanOrEqual(1_100);
    }
  });

  it('clamps the jitter to between none and the whole interval', async () => {
    const wide = await delaysWith(5, [0, 0.999_999]);
    expect(wide[1]).toBe(0);
    expect(wide[2]).toBeLessThanOrEqual(2_000);
    expect(wide[2]).toBeGreaterThan(1_999);
    expect(await delaysWith(-1, [0, 0.999_999])).toEqual([10, 1_000, 1_000]);
  });

  it('keeps the exact interval without jitter', async () => {
    expect(await delaysWith(0, [0, 0.5, 0.999])).toEqual([10, 1_000, 1_000, 1_000]);
  });
});

describe('worker loop on real timers', () => {
  it('keeps running rounds until stop(), then runs no more', async () => {
    const enough = Promise.withResolvers<void>();
    let calls = 0;
    const loop = createWorkerLoop({
      name: 'real',
      logger: createLogger({ level: 'silent' }),
      intervalMs: 1,
      initialDelayMs: 0,
      round: async () => {
        calls += 1;
        if (calls === 3) enough.resolve();
      },
    });
    loop.start();
    await enough.promise;
    await loop.stop();
    const after = calls;
    await Bun.sleep(10);
    expect(calls).toBe(after);
  });
});
