/**
 * The gateway's aggregated health: every upstream's readiness, probed in parallel so one hung
 * service costs the timeout once instead of stalling the others.
 */
import { UPSTREAM_NAMES, type UpstreamName } from './route-table.ts';

export type UpstreamHealth = 'healthy' | 'unhealthy' | 'unreachable' | 'timeout';

export interface HealthReport {
  status: 'healthy' | 'degraded';
  services: Record<UpstreamName, UpstreamHealth>;
}

export interface HealthFanoutDeps {
  /** Base URL of each upstream; `/ready` is appended. */
  upstreams: Record<UpstreamName, string>;
  /** Budget for each probe, covering headers and body alike. */
  timeoutMs: number;
  fetch?: typeof fetch;
}

/**
 * Builds the probe behind the gateway's `/health`: `GET /ready` on every upstream concurrently;
 * 200 is healthy, any other status unhealthy, no connection unreachable, no answer in time timeout.
 * Overall status is healthy only when every upstream is. The returned function never rejects.
 */
export function createHealthFanout(deps: HealthFanoutDeps): () => Promise<HealthReport> {
  const doFetch = deps.fetch ?? fetch;

  const probe = async (service: UpstreamName): Promise<UpstreamHealth> => {
    const url = deps.upstreams[service].replace(/\/+$/, '') + '/ready';
    const controller = new AbortController();
    let timedOut = false;
    const handle = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, deps.timeoutMs);
    try {
      const response = await doFetch(url, { signal: controller.signal, redirect: 'manual' });
      // Reading the (small) body to the end returns the keep-alive connection to the pool; the
      // timer still runs, so a body that never ends counts as a timeout within the same budget.
      await response.arrayBuffer();
      return response.status === 200 ? 'healthy' : 'unhealthy';
    } catch {
      return timedOut ? 'timeout' : 'unreachable';
    } finally {
      clearTimeout(handle);
    }
  };

  return async () => {
    const results = await Promise.all(UPSTREAM_NAMES.map(async (name) => [name, await probe(name)] as const));
    const services = Object.fromEntries(results) as Record<UpstreamName, UpstreamHealth>;
    const status = results.every(([, state]) => state === 'healthy') ? 'healthy' : 'degraded';
    return { status, services };
  };
}
