/**
 * Work a worker runs outside its loop (`runOnce()` from a route or a test, a one-off delivery) that
 * `stop()` must still wait for: a worker loop only waits for its own round, so without this a
 * SIGTERM could close the database under a round someone else started.
 */

export interface InFlight {
  /** Remembers `promise` until it settles; returns it unchanged. */
  track<T>(promise: Promise<T>): Promise<T>;
  /** Resolves once everything tracked so far has settled (fulfilled or rejected); never rejects. */
  settled(): Promise<void>;
}

/** An empty set of tracked promises. */
export function createInFlight(): InFlight {
  const pending = new Set<Promise<unknown>>();
  return {
    track(promise) {
      pending.add(promise);
      const forget = () => pending.delete(promise);
      promise.then(forget, forget);
      return promise;
    },
    async settled() {
      await Promise.allSettled([...pending]);
    },
  };
}
