/**
 * One OpenAPI document for the public API, merged from the services' own documents: each service's
 * paths move to the public `/api/...` path the gateway routes to them (the inverse of the route
 * table), internal and operational paths are dropped, components with the same name and content are
 * kept once while same-named ones that differ are prefixed with their service, the services' security
 * schemes become the one `bearerAuth`, and every operation is tagged with its service.
 */
import { publicPathFor, type UpstreamName } from './route-table.ts';

/** An OpenAPI 3.1 document, loosely typed: the merge only moves parts around. */
export type OpenApiDocument = Record<string, unknown> & {
  openapi: string;
  info?: { title?: string; version?: string; description?: string };
  paths?: Record<string, Record<string, unknown>>;
  components?: Record<string, Record<string, unknown>>;
};

export interface MergeSource {
  service: UpstreamName;
  document: OpenApiDocument;
}

export type SecurityRequirement = Record<string, string[]>;

export interface MergeOptions {
  title: string;
  version: string;
  description?: string;
  /** The gateway's own operations (`/health` and friends), kept at their paths. */
  own?: OpenApiDocument;
  /** Services whose document is not available: listed under `x-missing-services`. */
  missing?: readonly string[];
  /** The security an operation has at the edge, by method (lower case) and public path. */
  securityFor: (method: string, publicPath: string) => SecurityRequirement[];
}

const HTTP_METHODS = new Set(['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']);
/** The kit's endpoints every service has; the gateway answers its own versions of them. */
export const OPERATIONAL_PATHS: ReadonlySet<string> = new Set(['/health', '/ready', '/metrics', '/openapi.json', '/docs', '/service-info']);
const GATEWAY_TAG = 'api-gateway';

export const BEARER_SCHEME = {
  type: 'http',
  scheme: 'bearer',
  description: 'An access token from POST /api/auth/login, or a personal API token (fip_…). The gateway checks it before forwarding.',
};

/** Whether a service path belongs in the public document. */
export function isPublicServicePath(path: string): boolean {
  return !OPERATIONAL_PATHS.has(path) && path !== '/internal' && !path.startsWith('/internal/');
}

interface Part {
  service: string;
  /** Component section (`schemas`, `parameters`, ...) and name. */
  section: string;
  name: string;
  value: unknown;
}

/** Merges the sources (in order) into one document; pure and deterministic. */
export function mergeOpenApi(sources: readonly MergeSource[], options: MergeOptions): OpenApiDocument {
  const all: { service: string; document: OpenApiDocument; publicPath: (path: string) => string | null }[] = [
    ...(options.own ? [{ service: GATEWAY_TAG, document: options.own, publicPath: (p: string) => (p === '/openapi.json' ? null : p) }] : []),
    ...sources.map((s) => ({
      service: s.service as string,
      document: s.document,
      publicPath: (p: string) => (isPublicServicePath(p) ? publicPathFor(s.service, p) : null),
    })),
  ];

  // Component parts per service, security schemes aside (they are replaced by one bearerAuth).
  const parts: Part[] = [];
  for (const { service, document } of all) {
    for (const [section, entries] of Object.entries(document.components ?? {})) {
      if (section === 'securitySchemes' || !entries || typeof entries !== 'object') continue;
      for (const [name, value] of Object.entries(entries)) parts.push({ service, section, name, value });
    }
  }
  const finalName = nameComponents(parts);

  const paths: Record<string, Record<string, unknown>> = {};
  const usedOperationIds = new Set<string>();
  const tags: { name: string; description?: string }[] = [];
  for (const { service, document, publicPath } of all) {
    const rename = (ref: string) => renameRef(ref, service, finalName);
    let used = false;
    for (const [path, item] of Object.entries(document.paths ?? {})) {
      const target = publicPath(path);
      if (!target || !item || typeof item !== 'object') continue;
      const out: Record<string, unknown> = {};
      for (const [key, value] of Object.entries(item)) {
        // Per-path servers would point clients at the service instead of the gateway.
        if (key === 'servers') continue;
        if (!HTTP_METHODS.has(key)) {
          out[key] = rewriteRefs(value, rename);
          continue;
        }
        const operation = rewriteRefs(value, rename) as Record<string, unknown>;
        delete operation.servers;
        operation.tags = [service];
        operation.security = options.securityFor(key, target);
        if (typeof operation.operationId === 'string') {
          if (usedOperationIds.has(operation.operationId)) operation.operationId = `${service}.${operation.operationId}`;
          usedOperationIds.add(operation.operationId as string);
        }
        out[key] = operation;
        used = true;
      }
      if (Object.keys(out).length > 0) paths[target] = out;
    }
    if (used) tags.push({ name: service, ...(document.info?.description ? { description: document.info.description } : {}) });
  }

  const components: Record<string, Record<string, unknown>> = {};
  for (const part of parts) {
    const name = finalName.get(partKey(part.service, part.section, part.name))!;
    const section = (components[part.section] ??= {});
    if (!(name in section)) section[name] = rewriteRefs(part.value, (ref) => renameRef(ref, part.service, finalName));
  }
  pruneUnreferenced(components, paths);
  components.securitySchemes = { bearerAuth: BEARER_SCHEME };

  const merged: OpenApiDocument = {
    openapi: '3.1.0',
    info: { title: options.title, version: options.version, ...(options.description ? { description: options.description } : {}) },
    servers: [{ url: '/' }],
    security: [{ bearerAuth: [] }],
    tags,
    paths: sortKeys(paths),
    components: Object.fromEntries(Object.entries(components).map(([section, entries]) => [section, sortKeys(entries)])),
  };
  if (options.missing && options.missing.length > 0) merged['x-missing-services'] = [...options.missing];
  return merged;
}

const partKey = (service: string, section: string, name: string) => `${service}\u0000${section}\u0000${name}`;

/**
 * Decides every component's final name. Same-named parts keep the name when their content is the same
 * everywhere (after their own references are renamed), otherwise each is prefixed with its service.
 * Renaming one part can make parts that refer to it differ, so this repeats until nothing changes.
 */
function nameComponents(parts: readonly Part[]): Map<string, string> {
  const split = new Set<string>();
  const finalName = new Map<string, string>();
  const assign = () => {
    for (const p of parts) {
      const key = `${p.section}\u0000${p.name}`;
      finalName.set(partKey(p.service, p.section, p.name), split.has(key) ? `${p.service}.${p.name}` : p.name);
    }
  };
  for (;;) {
    assign();
    const contents = new Map<string, Set<string>>();
    for (const p of parts) {
      const key = `${p.section}\u0000${p.name}`;
      if (split.has(key)) continue;
      const canonical = canonicalJson(rewriteRefs(p.value, (ref) => renameRef(ref, p.service, finalName)));
      let set = contents.get(key);
      if (!set) contents.set(key, (set = new Set()));
      set.add(canonical);
    }
    const before = split.size;
    for (const [key, set] of contents) if (set.size > 1) split.add(key);
    if (split.size === before) return finalName;
  }
}

function renameRef(ref: string, service: string, finalName: Map<string, string>): string {
  const match = /^#\/components\/([^/]+)\/(.+)$/.exec(ref);
  if (!match) return ref;
  const [, section, escaped] = match;
  const name = escaped!.replace(/~1/g, '/').replace(/~0/g, '~');
  const renamed = finalName.get(partKey(service, section!, name));
  return renamed === undefined ? ref : `#/components/${section}/${renamed.replace(/~/g, '~0').replace(/\//g, '~1')}`;
}

/** A deep copy of `value` with every `$ref` string passed through `rename`. */
function rewriteRefs(value: unknown, rename: (ref: string) => string): unknown {
  if (Array.isArray(value)) return value.map((v) => rewriteRefs(v, rename));
  if (!value || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) out[key] = key === '$ref' && typeof v === 'string' ? rename(v) : rewriteRefs(v, rename);
  return out;
}

function collectRefs(value: unknown, into: string[]): void {
  if (Array.isArray(value)) for (const v of value) collectRefs(v, into);
  else if (value && typeof value === 'object') {
    for (const [key, v] of Object.entries(value)) {
      if (key === '$ref' && typeof v === 'string') into.push(v);
      else collectRefs(v, into);
    }
  }
}

/** Drops components nothing in `paths` reaches (the dropped operational routes leave some behind). */
function pruneUnreferenced(components: Record<string, Record<string, unknown>>, paths: Record<string, unknown>): void {
  const reached = new Set<string>();
  const queue: string[] = [];
  collectRefs(paths, queue);
  while (queue.length > 0) {
    const ref = queue.pop()!;
    if (reached.has(ref)) continue;
    reached.add(ref);
    const match = /^#\/components\/([^/]+)\/(.+)$/.exec(ref);
    if (!match) continue;
    const name = match[2]!.replace(/~1/g, '/').replace(/~0/g, '~');
    collectRefs(components[match[1]!]?.[name], queue);
  }
  for (const [section, entries] of Object.entries(components)) {
    for (const name of Object.keys(entries)) {
      if (!reached.has(`#/components/${section}/${name.replace(/~/g, '~0').replace(/\//g, '~1')}`)) delete entries[name];
    }
    if (Object.keys(entries).length === 0) delete components[section];
  }
}

/** JSON with object keys sorted, so equal content compares equal whatever the key order. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}

function sortKeys<T>(record: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
