/** A federated parent's state and progress derived from its children. */
import { describe, expect, it } from 'bun:test';
import { parentProgress, parentState } from '../../services/job-processor/src/parent-state.ts';

const kids = (...states: string[]) => states.map((state) => ({ state, progress: 0 }));

describe('parentState', () => {
  it.each([
    [['completed', 'completed'], 'completed'],
    [['completed', 'failed'], 'partial'],
    [['completed', 'cancelled'], 'partial'],
    [['completed', 'expired'], 'partial'],
    [['failed', 'failed'], 'failed'],
    [['failed', 'cancelled'], 'failed'],
    [['expired', 'failed'], 'failed'],
    [['cancelled', 'cancelled'], 'cancelled'],
    [['queued', 'queued'], 'queued'],
    [['queued', 'submitting'], 'running'],
    [['running', 'completed'], 'running'],
    [['queued', 'cancelled'], 'running'],
    [['exporting', 'failed'], 'running'],
  ])('%j → %s', (states, expected) => {
    expect(parentState(kids(...states))).toBe(expected as ReturnType<typeof parentState>);
  });

  it('counts a cancelled child instead of ignoring it', () => {
    expect(parentState(kids('completed', 'completed', 'cancelled'))).toBe('partial');
  });
});

describe('parentProgress', () => {
  it('averages the children, ended ones counting as 100', () => {
    expect(parentProgress([{ state: 'running', progress: 50 }, { state: 'failed', progress: 10 }])).toBe(75);
    expect(parentProgress([])).toBe(0);
  });
});
