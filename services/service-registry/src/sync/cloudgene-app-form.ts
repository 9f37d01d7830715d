/**
 * A Cloudgene server's app form (`GET /api/v2/server/apps/{appId}`, protocol reference §1.4): the one
 * place a Cloudgene server lists its reference panels, their populations and the job options it
 * accepts. Fetched with an operator's API token (raw `X-Auth-Token`, never `Bearer`: the server
 * answers 401 to a Bearer header) and parsed into what the catalogue stores.
 */
import { HttpProblem } from '@shared/errors.ts';
import { joinUrl } from '../upstream-get.ts';
import { syncGetJson } from './sync-get.ts';

export interface AppFormPopulation {
  id: string;
  name: string;
  /** The app form never says how many samples a population has; a stored count is kept by the sync. */
  samples: null;
}

export interface AppFormPanel {
  /** The bare panel id (`hapmap-2`): what humans and imputationbot use, and the catalogue's key. */
  externalId: string;
  /** The key exactly as the server lists it (`apps@hapmap-2@2.0.0`), which is what a submission sends. */
  externalKey: string;
  version: string | null;
  displayName: string;
  populations: AppFormPopulation[];
}

export interface CloudgeneAppForm {
  appId: string;
  appName: string;
  appVersion: string | null;
  panels: AppFormPanel[];
  /** Keys of the `build` list: the builds the server accepts as *input* (it lifts over itself). */
  builds: string[];
  phasing: string[];
  modes: string[];
  r2Filters: string[];
}

/** The server answered 200 with something that is not a Cloudgene app form. */
class MalformedAppFormError extends HttpProblem {
  constructor(detail: string) {
    super(502, 'upstream_malformed', detail);
    this.name = 'MalformedAppFormError';
  }
}

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);
const text = (value: unknown): string | undefined => (typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined);

/** `apps@<id>@<version>` → id and version; the server also resolves `<id>@<version>` and a bare `<id>`. */
function parsePanelKey(key: string): { id: string; version: string | null } {
  const parts = key.split('@');
  if (parts[0] === 'apps') parts.shift();
  const [id = '', version] = parts;
  return { id, version: text(version) ?? null };
}

/** `[{key, value}]` → the keys, in the server's order (non-string keys are skipped). */
function listKeys(param: Json | undefined): string[] {
  if (!param || !Array.isArray(param.values)) return [];
  const keys: string[] = [];
  for (const entry of param.values) {
    const key = isObject(entry) ? text(entry.key) : undefined;
    if (key !== undefined && !keys.includes(key)) keys.push(key);
  }
  return keys;
}

function populationsOf(entry: Json | undefined): AppFormPopulation[] {
  if (!entry || !Array.isArray(entry.values)) return [];
  const populations: AppFormPopulation[] = [];
  for (const value of entry.values) {
    if (!isObject(value)) continue;
    const id = text(value.key);
    // PopulationSchema's bounds: an id a job can name, a readable label.
    if (id === undefined || id.length > 64 || populations.some((p) => p.id === id)) continue;
    populations.push({ id, name: (text(value.value) ?? text(value.label) ?? id).slice(0, 200), samples: null });
  }
  return populations;
}

/** Numeric-aware version order (`2.0.10` after `2.0.9`); null sorts first. */
const compareVersions = (a: string | null, b: string | null) => (a ?? '').localeCompare(b ?? '', 'en', { numeric: true });

/**
 * Parses an app form body. Throws `MalformedAppFormError` when it is not one: not an object, no
 * `params` array, or no reference-panel parameter (an `app_list`, normally id `refpanel`). Optional
 * list parameters (build, phasing, mode, r2Filter) and the population `binded_list` may be missing.
 */
export function parseAppForm(body: unknown): CloudgeneAppForm {
  if (!isObject(body) || !Array.isArray(body.params)) {
    throw new MalformedAppFormError('The server did not answer with a Cloudgene app form (no params list).');
  }
  const appId = text(body.id);
  if (appId === undefined) throw new MalformedAppFormError('The app form has no app id.');
  const params = body.params.filter(isObject);
  const byId = (id: string) => params.find((p) => p.id === id);

  const appLists = params.filter((p) => p.type === 'app_list');
  const refpanel = appLists.find((p) => p.id === 'refpanel') ?? appLists.find((p) => p.category === 'RefPanel') ?? (appLists.length === 1 ? appLists[0] : undefined);
  if (!refpanel || !Array.isArray(refpanel.values)) {
    throw new MalformedAppFormError(`App ${appId} has no reference-panel parameter; it is not an imputation app.`);
  }
  const bound = params.find((p) => p.type === 'binded_list' && p.bind === refpanel.id);
  const populationEntries = bound && Array.isArray(bound.values) ? bound.values.filter(isObject) : [];

  // Two installed versions of one panel share its bare id (the catalogue's key); the server resolves
  // the bare id to the latest installed version, so that one is kept.
  const panels = new Map<string, AppFormPanel>();
  for (const entry of refpanel.values) {
    if (!isObject(entry)) continue;
    const key = text(entry.key);
    if (key === undefined) continue;
    const { id, version } = parsePanelKey(key);
    if (!text(id)) continue;
    const known = panels.get(id);
    if (known && compareVersions(known.version, version) >= 0) continue;
    const populations = populationEntries.find((p) => p.key === key) ?? populationEntries.find((p) => typeof p.key === 'string' && parsePanelKey(p.key).id === id);
    panels.set(id, {
      externalId: id,
      externalKey: key,
      version,
      displayName: (text(entry.value) ?? text(entry.label) ?? id).slice(0, 500),
      populations: populationsOf(populations),
    });
  }

  return {
    appId,
    appName: text(body.name) ?? appId,
    appVersion: text(body.version) ?? null,
    panels: [...panels.values()],
    builds: listKeys(byId('build')),
    phasing: listKeys(byId('phasing')),
    modes: listKeys(byId('mode')),
    r2Filters: listKeys(byId('r2Filter')),
  };
}

export interface AppFormRequest {
  /** Server root, without a trailing slash. */
  baseUrl: string;
  appId: string;
  /** The operator's Cloudgene API token. */
  token: string;
}

/**
 * Fetches and parses the app form. Failures are problems the sync route can answer with:
 * timeout → 504 `upstream_timeout`; network failure → 502 `upstream_unreachable`; 401/403 → 502
 * `operator_credential_rejected`; 404 → 502 `app_not_installed`; another status → 502
 * `upstream_error`; a body that is not an app form → 502 `upstream_malformed`.
 */
export async function fetchAppForm(deps: { fetch?: typeof fetch; timeoutMs: number }, request: AppFormRequest): Promise<CloudgeneAppForm> {
  const body = await syncGetJson(deps, {
    url: joinUrl(request.baseUrl, `/api/v2/server/apps/${encodeURIComponent(request.appId)}`),
    headers: { 'x-auth-token': request.token },
    baseUrl: request.baseUrl,
    malformed: (detail) => new MalformedAppFormError(detail),
    statusProblem: (status) => {
      if (status === 401 || status === 403) {
        return new HttpProblem(502, 'operator_credential_rejected', `The server refused the operator's API token (HTTP ${status}); it may have expired or been replaced by a newer one.`, {
          extensions: { upstreamStatus: status },
        });
      }
      if (status === 404) {
        return new HttpProblem(502, 'app_not_installed', `The server has no app ${request.appId} installed (or the operator may not use it).`, { extensions: { upstreamStatus: 404 } });
      }
      return undefined;
    },
  });
  return parseAppForm(body);
}
