/**
 * A GA4GH WES node's `GET {base}/service-info` (protocol reference §3.2, §3.3), parsed from either
 * shape: 1.0 (standalone object, engine → version string) and 1.1 (a GA4GH Service with id/name/
 * type, engine → `{workflow_engine_version: [...]}`). Real servers also send
 * `workflow_type_versions` as type → bare array instead of the spec's object; both are read.
 * WES reports no reference panels, only what it can run.
 */
import { HttpProblem } from '@shared/errors.ts';
import { joinUrl } from '../upstream-get.ts';
import { syncGetJson } from './sync-get.ts';

export interface WesServiceInfo {
  /** `1.1` when the body is a GA4GH Service (has `id` and a `type` object), else `1.0`. */
  serviceInfoShape: '1.0' | '1.1';
  wesVersions: string[];
  /** Workflow type (e.g. `Nextflow`) → the versions a run may name. */
  workflowTypes: Record<string, string[]>;
  /** Workflow engine → versions (1.0 reports one version per engine). */
  engines: Record<string, string[]>;
  filesystemProtocols: string[];
  authInstructionsUrl: string | null;
  name?: string;
  version?: string;
}

/** The server answered 200 with something that is not a WES service-info. */
class MalformedServiceInfoError extends HttpProblem {
  constructor(detail: string) {
    super(502, 'upstream_malformed', detail);
    this.name = 'MalformedServiceInfoError';
  }
}

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);
const text = (value: unknown): string | undefined => (typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined);

function strings(value: unknown): string[] {
  if (typeof value === 'string') return text(value) ? [value.trim()] : [];
  if (!Array.isArray(value)) return [];
  const out: string[] = [];
  for (const item of value) {
    const s = text(item);
    if (s !== undefined && !out.includes(s)) out.push(s);
  }
  return out;
}

/** name → versions, where each value is `{<field>: [...]}` (spec), a bare array, or one string (1.0 engines). */
function versionMap(value: unknown, field: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  if (!isObject(value)) return out;
  for (const [name, entry] of Object.entries(value)) {
    // JSON.parse makes `__proto__` an own key; assigning it would swap the map's prototype.
    if (name === '__proto__' || !text(name)) continue;
    out[name] = isObject(entry) ? strings(entry[field]) : strings(entry);
  }
  return out;
}

/**
 * Parses a service-info body. Throws `MalformedServiceInfoError` unless it is an object with a
 * `workflow_type_versions` object (the one field every WES version requires and every server sends);
 * the other fields are read when present.
 */
export function parseWesServiceInfo(body: unknown): WesServiceInfo {
  if (!isObject(body) || !isObject(body.workflow_type_versions)) {
    throw new MalformedServiceInfoError('The server did not answer with a GA4GH WES service-info (no workflow_type_versions).');
  }
  const is11 = text(body.id) !== undefined && isObject(body.type);
  const info: WesServiceInfo = {
    serviceInfoShape: is11 ? '1.1' : '1.0',
    wesVersions: strings(body.supported_wes_versions),
    workflowTypes: versionMap(body.workflow_type_versions, 'workflow_type_version'),
    engines: versionMap(body.workflow_engine_versions, 'workflow_engine_version'),
    filesystemProtocols: strings(body.supported_filesystem_protocols),
    authInstructionsUrl: text(body.auth_instructions_url) ?? null,
  };
  const name = text(body.name);
  const version = text(body.version);
  if (name !== undefined) info.name = name;
  if (version !== undefined) info.version = version;
  return info;
}

export interface ServiceInfoRequest {
  /** The WES base, ending in `/ga4gh/wes/v1`. */
  baseUrl: string;
  /** An operator's bearer token, for nodes that protect service-info; sent as `Authorization: Bearer`. */
  token?: string | null;
}

/**
 * Fetches and parses service-info. Failures are problems the sync route can answer with:
 * timeout → 504 `upstream_timeout`; network failure → 502 `upstream_unreachable`; 401/403 → 409
 * `operator_credential_missing` when no token was sent, else 502 `operator_credential_rejected`;
 * another status → 502 `upstream_error`; a body that is not service-info → 502 `upstream_malformed`.
 */
export async function fetchWesServiceInfo(deps: { fetch?: typeof fetch; timeoutMs: number }, request: ServiceInfoRequest): Promise<WesServiceInfo> {
  const body = await syncGetJson(deps, {
    url: joinUrl(request.baseUrl, '/service-info'),
    headers: request.token ? { authorization: `Bearer ${request.token}` } : {},
    baseUrl: request.baseUrl,
    malformed: (detail) => new MalformedServiceInfoError(detail),
    statusProblem: (status) => {
      if (status !== 401 && status !== 403) return undefined;
      if (!request.token) {
        return new HttpProblem(409, 'operator_credential_missing', 'This WES node wants a bearer token for service-info and no operator credential is configured: set OPERATOR_TOKENS for its slug or store a WES token in your own vault for it.', {
          extensions: { upstreamStatus: status },
        });
      }
      return new HttpProblem(502, 'operator_credential_rejected', `The server refused the operator's bearer token (HTTP ${status}).`, { extensions: { upstreamStatus: status } });
    },
  });
  return parseWesServiceInfo(body);
}
