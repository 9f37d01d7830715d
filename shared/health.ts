/**
 * Readiness: a service declares the dependencies it needs (database, KV, storage); `/ready` runs
 * them concurrently, each under a short timeout, and names the ones that failed.
 */
export interface ReadinessCheck {
  name: string;
  /** Resolves when the dependency works; the signal aborts when the timeout passes. */
  run(signal: AbortSignal): Promise<void>;
}

export interface CheckOutcome {
  status: 'ok' | 'failed';
  latencyMs: number;
  error?: string;
}

export interface ReadinessReport {
  status: 'ready' | 'not_ready';
  checks: Record<string, CheckOutcome>;
  failed: string[];
}

export async function runReadiness(checks: ReadinessCheck[], timeoutMs: number): Promise<ReadinessReport> {
  const outcomes = await Promise.all(checks.map((check) => runOne(check, timeoutMs)));
  const report: ReadinessReport = { status: 'ready', checks: {}, failed: [] };
  checks.forEach((check, i) => {
    const outcome = outcomes[i]!;
    report.checks[check.name] = outcome;
    if (outcome.status === 'failed') report.failed.push(check.name);
  });
  if (report.failed.length > 0) report.status = 'not_ready';
  return report;
}

async function runOne(check: ReadinessCheck, timeoutMs: number): Promise<CheckOutcome> {
  const started = performance.now();
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort();
      reject(new Error(`timed out after ${timeoutMs} ms`));
    }, timeoutMs);
  });
  try {
    await Promise.race([check.run(controller.signal), timeout]);
    return { status: 'ok', latencyMs: elapsed(started) };
  } catch (err) {
    return { status: 'failed', latencyMs: elapsed(started), error: describeError(err) };
  } finally {
    clearTimeout(timer);
  }
}

function elapsed(started: number): number {
  return Math.round((performance.now() - started) * 100) / 100;
}

/** A short, credential-free description of a dependency failure. */
function describeError(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/\/\/[^@\s/]+@/g, '//***@').slice(0, 200);
}

/** A readiness check that passes when `target.ping()` resolves (databases, KV). */
export function pingCheck(name: string, target: { ping(): Promise<void> }): ReadinessCheck {
  return { name, run: () => target.ping() };
}
