/**
 * Health probe for a GA4GH WES node (protocol reference §3.1–3.3): `GET {base}/service-info`, where
 * the base already ends in `/ga4gh/wes/v1`. Tolerates both 1.0 and 1.1 shapes and servers that map
 * workflow types straight to version arrays; `system_state_counts` gives the load when it is sent.
 */
import type { ServiceRow } from '../domain.ts';
import { getJson, isRecord, joinUrl, outcome, type ProbeOptions, type ProbeOutcome } from './probe-outcome.ts';

const WAITING_STATES = ['QUEUED', 'INITIALIZING'] as const;
const RUNNING_STATES = ['RUNNING', 'CANCELING', 'PAUSED'] as const;

/** Probes one WES node; the operator token, when given, goes in `Authorization: Bearer`. */
export async function probeWes(service: ServiceRow, opts: ProbeOptions): Promise<ProbeOutcome> {
  const token = opts.operatorToken || undefined;
  const answer = await getJson(joinUrl(service.baseUrl, '/service-info'), {
    signal: opts.signal,
    fetch: opts.fetch,
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  if (!answer.ok) return answer.outcome;

  const { httpStatus, latencyMs, body } = answer;
  const shapeError = serviceInfoProblem(body);
  if (shapeError) return outcome('unhealthy', { latencyMs, httpStatus, error: `unexpected service-info: ${shapeError}` });
  const info = body as { workflow_type_versions: Record<string, unknown>; system_state_counts?: unknown };

  const load = loadOf(info.system_state_counts);
  // A node that offers no workflow type cannot run an imputation, though it answers.
  if (Object.keys(info.workflow_type_versions).length === 0) {
    return outcome('degraded', { latencyMs, httpStatus, error: 'service-info lists no workflow types', ...load });
  }
  return outcome('healthy', { latencyMs, httpStatus, ...load });
}

/** Why `body` is not a WES ServiceInfo (1.0 or 1.1), or undefined when it is one. */
function serviceInfoProblem(body: unknown): string | undefined {
  if (!isRecord(body)) return 'not a JSON object';
  const versions = body.supported_wes_versions;
  if (!Array.isArray(versions) || !versions.every((v) => typeof v === 'string')) return 'supported_wes_versions is not a list of strings';
  const types = body.workflow_type_versions;
  if (!isRecord(types)) return 'workflow_type_versions is not an object';
  for (const [type, value] of Object.entries(types)) {
    // Spec: type → {workflow_type_version: [...]}; some servers: type → [...].
    const list = Array.isArray(value) ? value : isRecord(value) ? value.workflow_type_version : undefined;
    if (!Array.isArray(list)) return `workflow_type_versions.${type} has no version list`;
  }
  return undefined;
}

/** Queue and running counts from `system_state_counts`; null when the server sends none (often `{}`). */
function loadOf(counts: unknown): { queueSize: number | null; runningJobs: number | null } {
  if (!isRecord(counts) || Object.keys(counts).length === 0) return { queueSize: null, runningJobs: null };
  const sum = (states: readonly string[]) =>
    states.reduce((total, state) => {
      const n = counts[state];
      return total + (typeof n === 'number' && Number.isFinite(n) && n > 0 ? Math.floor(n) : 0);
    }, 0);
  return { queueSize: sum(WAITING_STATES), runningJobs: sum(RUNNING_STATES) };
}
