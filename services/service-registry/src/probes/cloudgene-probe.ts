/**
 * Health probe for a Cloudgene 3 server (protocol reference §1.3): `GET /api/v2/server` says whether
 * the server answers, is in maintenance and (with the operator's token) whether the imputation app is
 * installed; `GET /api/v2/server/counters`, fetched at the same time, gives the public queue length.
 */
import type { ServiceRow } from '../domain.ts';
import { getJson, isRecord, joinUrl, outcome, type ProbeOptions, type ProbeOutcome } from './probe-outcome.ts';

/**
 * Probes one Cloudgene service. The operator token is sent raw in `X-Auth-Token` (Cloudgene rejects
 * `Authorization: Bearer`), and only to `/api/v2/server`; the counters are anonymous.
 */
export async function probeCloudgene(service: ServiceRow, opts: ProbeOptions): Promise<ProbeOutcome> {
  const token = opts.operatorToken || undefined;
  const [server, counters] = await Promise.all([
    getJson(joinUrl(service.baseUrl, '/api/v2/server'), {
      signal: opts.signal,
      fetch: opts.fetch,
      headers: token ? { 'x-auth-token': token } : {},
    }),
    getJson(joinUrl(service.baseUrl, '/api/v2/server/counters'), { signal: opts.signal, fetch: opts.fetch }),
  ]);
  if (!server.ok) return server.outcome;

  const { httpStatus, latencyMs } = server;
  // The counters are a bonus: a broken counters endpoint says nothing about whether jobs can run.
  const queueSize = counters.ok ? queueSizeOf(counters.body) : null;
  const body = server.body;
  if (!isRecord(body) || !Array.isArray(body.apps)) {
    return outcome('unhealthy', { latencyMs, httpStatus, error: 'unexpected /api/v2/server answer: no apps array', queueSize });
  }

  // Cloudgene treats a token it does not accept as anonymous (200, loggedIn false) on this endpoint:
  // the operator's credential is refused, which a 401 elsewhere would say outright.
  if (token && body.loggedIn === false) {
    return outcome('unhealthy', { latencyMs, httpStatus, error: 'credential rejected: the server treats the operator token as anonymous', queueSize });
  }

  const problems: string[] = [];
  if (body.maintenace === true) {
    const message = typeof body.maintenaceMessage === 'string' ? body.maintenaceMessage.trim() : '';
    problems.push(message ? `maintenance: ${message}` : 'maintenance mode');
  }
  // Anonymous callers see no apps, so the app can only be checked with a token.
  if (token && !appInstalled(service.appId, body.apps)) {
    problems.push(`app ${service.appId} not installed (server lists ${appList(body.apps)})`);
  }
  return outcome(problems.length ? 'degraded' : 'healthy', {
    latencyMs,
    httpStatus,
    error: problems.length ? problems.join('; ') : null,
    queueSize,
  });
}

/** `imputationserver2` matches any installed version; `imputationserver2@2.0.12` only that one. */
function appInstalled(appId: string, apps: unknown[]): boolean {
  const [wantId, wantVersion] = splitAppId(appId);
  return apps.some((app) => {
    if (!isRecord(app) || typeof app.id !== 'string') return false;
    const [id, idVersion] = splitAppId(app.id);
    const version = idVersion ?? (typeof app.version === 'string' ? app.version : undefined);
    return id === wantId && (wantVersion === undefined || version === wantVersion);
  });
}

function splitAppId(appId: string): [string, string | undefined] {
  const at = appId.indexOf('@');
  return at < 0 ? [appId, undefined] : [appId.slice(0, at), appId.slice(at + 1)];
}

function appList(apps: unknown[]): string {
  const ids = apps.flatMap((app) => (isRecord(app) && typeof app.id === 'string' ? [app.version && !app.id.includes('@') ? `${app.id}@${String(app.version)}` : app.id] : []));
  return ids.length ? ids.join(', ') : 'none';
}

function queueSizeOf(body: unknown): number | null {
  if (!isRecord(body) || !isRecord(body.queue)) return null;
  const size = body.queue.size;
  return typeof size === 'number' && Number.isInteger(size) && size >= 0 ? size : null;
}
