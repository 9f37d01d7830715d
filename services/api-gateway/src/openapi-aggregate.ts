/**
 * The gateway's merged `/openapi.json`: fetches every service's `/openapi.json` (short timeout, all at
 * once), merges them, and caches the result. A document older than `refreshMs` is served while a
 * refresh runs in the background (sooner, `retryMs`, while a service is missing); the merge is redone
 * only when some service's document changed. A service that does not answer keeps its last good
 * document, or is left out and named under `x-missing-services` until it answers.
 */
import type { Logger } from '@shared/log.ts';
import { errorName } from './log-safe.ts';
import { mergeOpenApi, type MergeOptions, type OpenApiDocument } from './openapi-merge.ts';
import { UPSTREAM_NAMES, type UpstreamName } from './route-table.ts';

export interface MergedDocument {
  /** The serialized document. */
  json: string;
  /** A strong ETag of `json`. */
  etag: string;
  /** Services left out because no document of theirs was ever fetched. */
  missing: UpstreamName[];
}

export interface OpenApiAggregatorDeps {
  upstreams: Record<UpstreamName, string>;
  /** Title, version and the edge's security per operation. */
  merge: Omit<MergeOptions, 'missing' | 'own'>;
  /** The gateway's own document, read at each rebuild. */
  own?: () => OpenApiDocument;
  /** Budget for each service's document. */
  timeoutMs: number;
  /** Age after which the merged document is refreshed. */
  refreshMs: number;
  /** Age after which a document with missing services is refreshed; defaults to min(refreshMs, 5 s). */
  retryMs?: number;
  logger: Logger;
  fetch?: typeof fetch;
  now?: () => number;
}

export interface OpenApiAggregator {
  /** The current merged document; waits for the first build, later returns at once (refreshing when stale). */
  document(): Promise<MergedDocument>;
  /** Fetches every service's document now and rebuilds the merge if any changed. */
  refresh(): Promise<MergedDocument>;
}

/** Builds the aggregator; no I/O until the document is first asked for. */
export function createOpenApiAggregator(deps: OpenApiAggregatorDeps): OpenApiAggregator {
  const doFetch = deps.fetch ?? fetch;
  const now = deps.now ?? Date.now;
  const retryMs = deps.retryMs ?? Math.min(deps.refreshMs, 5_000);
  const lastGood = new Map<UpstreamName, { text: string; document: OpenApiDocument }>();
  let current: MergedDocument | undefined;
  let builtFrom = '';
  let refreshedAt = -Infinity;
  let inFlight: Promise<MergedDocument> | undefined;

  async function fetchDocument(service: UpstreamName): Promise<void> {
    const url = deps.upstreams[service].replace(/\/+$/, '') + '/openapi.json';
    try {
      const response = await doFetch(url, { signal: AbortSignal.timeout(deps.timeoutMs), redirect: 'manual' });
      const text = await response.text();
      if (response.status !== 200) throw new Error(`status ${response.status}`);
      if (lastGood.get(service)?.text === text) return;
      const document = JSON.parse(text) as OpenApiDocument;
      if (typeof document?.openapi !== 'string' || typeof document.paths !== 'object') throw new Error('not an OpenAPI document');
      lastGood.set(service, { text, document });
    } catch (err) {
      deps.logger.warn('service OpenAPI document unavailable', {
        service,
        kept: lastGood.has(service) ? 'last good document' : 'none',
        error: err instanceof Error && err.message.startsWith('status ') ? err.message : errorName(err),
      });
    }
  }

  async function rebuild(): Promise<MergedDocument> {
    await Promise.all(UPSTREAM_NAMES.map(fetchDocument));
    refreshedAt = now();
    const present = UPSTREAM_NAMES.filter((name) => lastGood.has(name));
    const fingerprint = present.map((name) => `${name}:${Bun.hash(lastGood.get(name)!.text)}`).join(',');
    if (current && fingerprint === builtFrom) return current;
    const missing = UPSTREAM_NAMES.filter((name) => !lastGood.has(name));
    const merged = mergeOpenApi(
      present.map((service) => ({ service, document: lastGood.get(service)!.document })),
      { ...deps.merge, missing, ...(deps.own ? { own: deps.own() } : {}) },
    );
    const json = JSON.stringify(merged);
    current = { json, etag: `"${new Bun.CryptoHasher('sha256').update(json).digest('base64url')}"`, missing };
    builtFrom = fingerprint;
    return current;
  }

  function refresh(): Promise<MergedDocument> {
    inFlight ??= rebuild().finally(() => {
      inFlight = undefined;
    });
    return inFlight;
  }

  return {
    refresh,
    async document() {
      if (!current) return refresh();
      const maxAge = current.missing.length > 0 ? retryMs : deps.refreshMs;
      // Stale-while-revalidate: nobody waits for six fetches once a document exists.
      if (now() - refreshedAt >= maxAge) void refresh().catch(() => {});
      return current;
    },
  };
}
