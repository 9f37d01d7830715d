/**
 * Teardown of an end-to-end setting: each step runs even when an earlier one failed (a process that
 * would not stop must not leave the fakes listening or the scratch database behind), and the failures
 * are thrown together at the end.
 */

/** Runs `steps` one after another, then throws an AggregateError naming `what` if any of them failed. */
export async function stopInOrder(what: string, steps: readonly (() => unknown)[]): Promise<void> {
  const errors: unknown[] = [];
  for (const step of steps) {
    try {
      await step();
    } catch (err) {
      errors.push(err);
    }
  }
  if (errors.length > 0) throw new AggregateError(errors, `${what} did not stop cleanly`);
}
