/** A federated parent's state, derived from its children's (a cancelled child counts like any other). */
import { ACTIVE_STATES, TERMINAL_STATES, type ParentState } from './domain.ts';

const RUNNING: ReadonlySet<string> = new Set(ACTIVE_STATES);

/**
 * All completed → completed; all ended and some completed → partial; all failed (or expired) →
 * failed; all cancelled → cancelled; ended in a mix of failed and cancelled → failed; otherwise
 * running when any child is past the queue, else queued.
 */
export function parentState(children: readonly { state: string }[]): ParentState {
  if (children.length === 0) return 'queued';
  const states = children.map((c) => c.state);
  if (states.every((s) => TERMINAL_STATES.has(s))) {
    if (states.every((s) => s === 'completed')) return 'completed';
    if (states.some((s) => s === 'completed')) return 'partial';
    if (states.every((s) => s === 'cancelled')) return 'cancelled';
    return 'failed';
  }
  return states.some((s) => RUNNING.has(s) || TERMINAL_STATES.has(s)) ? 'running' : 'queued';
}

/** A parent's progress: the mean of its children's, ended children counting as 100. */
export function parentProgress(children: readonly { state: string; progress: number }[]): number {
  if (children.length === 0) return 0;
  const sum = children.reduce((acc, c) => acc + (TERMINAL_STATES.has(c.state) ? 100 : c.progress), 0);
  return Math.round(sum / children.length);
}
