/**
 * job-processor's calls to the other platform services, each with its service token: the registry
 * (catalogue entries, discovery), file-manager (inputs, links, holds, results) and user-service's
 * vault (credential metadata, released credentials). Workers and routes take these as dependencies.
 */
import type { ServiceCredential } from '@shared/auth.ts';
import { UpstreamError, type HttpClient } from '@shared/http-client.ts';
import { ReleasedCredentialSchema, StoredCredentialSummariesSchema } from '@shared/schemas/credentials.ts';
import { InternalStoredFileSchema, StoredFileSchema, type StoredFile } from '@shared/schemas/files.ts';
import { DiscoverResultSchema, ServiceWithPanelsSchema, type DiscoverResult, type ImputationService, type ReferencePanel } from '@shared/schemas/registry.ts';
import { z } from '@hono/zod-openapi';
import type { ServerCredential } from './adapters/adapter.ts';

export interface RegistryClient {
  /** A service with its current panels; null when the catalogue has no such service. */
  service(idOrSlug: string): Promise<(ImputationService & { panels: ReferencePanel[] }) | null>;
  discover(query: Record<string, string | number | undefined>): Promise<DiscoverResult>;
}

export type InternalFile = StoredFile & { userId: string };

export interface FilesClient {
  /** An input or result file with its owner; null when there is none. */
  file(id: string): Promise<InternalFile | null>;
  content(id: string, signal?: AbortSignal): Promise<ReadableStream<Uint8Array>>;
  /** A signed, expiring URL a server outside the platform can fetch the file from. */
  link(id: string, expiresInSeconds: number): Promise<string>;
  hold(fileId: string, jobId: string): Promise<void>;
  release(fileId: string, jobId: string): Promise<void>;
  /** A result already stored under `key`, so a retried retrieval never stores it twice. */
  resultByKey(key: string): Promise<StoredFile | null>;
  storeResult(input: {
    key: string;
    userId: string;
    jobId: string;
    name: string;
    sizeBytes: number | null;
    sourceService: string;
    externalJobId: string;
    panel: string;
    body: ReadableStream<Uint8Array>;
    signal?: AbortSignal;
  }): Promise<StoredFile>;
}

export interface VaultClient {
  /** The slugs the user has a credential for, with expiry. */
  stored(userId: string): Promise<{ serviceId: string; type: string; expiresAt: string | null; expired: boolean }[]>;
  /** The user's credential for a server; null when none is stored. */
  release(userId: string, slug: string): Promise<ServerCredential | null>;
}


const notFound = (err: unknown) => err instanceof UpstreamError && err.upstreamStatus === 404;

export function registryClient(client: HttpClient, credential: ServiceCredential): RegistryClient {
  const headers = async () => ({ authorization: await credential.authorization() });
  return {
    async service(ref) {
      try {
        return await client.call({ path: `/services/${encodeURIComponent(ref)}`, headers: await headers(), schema: ServiceWithPanelsSchema });
      } catch (err) {
        if (notFound(err)) return null;
        throw err;
      }
    },
    async discover(query) {
      return client.call({ path: '/services/discover', query, headers: await headers(), schema: DiscoverResultSchema });
    },
  };
}

export function filesClient(client: HttpClient, credential: ServiceCredential, baseUrl: string, fetchImpl: typeof fetch = fetch): FilesClient {
  const base = baseUrl.replace(/\/+$/, '');
  const headers = async () => ({ authorization: await credential.authorization() });
  return {
    async file(id) {
      try {
        return await client.call({ path: `/internal/files/${encodeURIComponent(id)}`, headers: await headers(), schema: InternalStoredFileSchema });
      } catch (err) {
        if (notFound(err)) return null;
        throw err;
      }
    },
    async content(id, signal) {
      const response = await fetchImpl(`${base}/internal/files/${encodeURIComponent(id)}/content`, { headers: await headers(), signal });
      if (!response.ok || !response.body) {
        await response.body?.cancel();
        throw new UpstreamError('file-manager', 502, 'upstream_error', `file-manager answered ${response.status} for input ${id}.`, response.status);
      }
      return response.body;
    },
    async link(id, expiresInSeconds) {
      const body = await client.call({
        method: 'POST',
        path: `/internal/files/${encodeURIComponent(id)}/link`,
        body: { expiresInSeconds },
        headers: await headers(),
        idempotent: true,
        schema: z.object({ url: z.string() }),
      });
      return body.url;
    },
    async hold(fileId, jobId) {
      await client.call({ method: 'PUT', path: `/internal/files/${fileId}/holds/${jobId}`, headers: await headers() });
    },
    async release(fileId, jobId) {
      try {
        await client.call({ method: 'DELETE', path: `/internal/files/${fileId}/holds/${jobId}`, headers: await headers() });
      } catch (err) {
        if (!notFound(err)) throw err;
      }
    },
    async resultByKey(key) {
      try {
        return await client.call({ path: '/internal/results', query: { key }, headers: await headers(), schema: StoredFileSchema });
      } catch (err) {
        if (notFound(err)) return null;
        throw err;
      }
    },
    async storeResult(input) {
      const query = new URLSearchParams({
        resultKey: input.key,
        userId: input.userId,
        jobId: input.jobId,
        name: input.name,
        sourceService: input.sourceService,
        externalJobId: input.externalJobId,
        externalName: input.name,
        panel: input.panel,
      });
      if (input.sizeBytes !== null) query.set('sizeBytes', String(input.sizeBytes));
      const response = await fetchImpl(`${base}/internal/results?${query}`, {
        method: 'POST',
        headers: { ...(await headers()), 'content-type': 'application/octet-stream' },
        body: input.body,
        signal: input.signal,
      });
      const text = await response.text();
      if (!response.ok) {
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {}
        throw new UpstreamError('file-manager', 502, 'upstream_error', `file-manager refused result ${input.name} (${response.status}).`, response.status, parsed);
      }
      return StoredFileSchema.parse(JSON.parse(text));
    },
  };
}

export function vaultClient(client: HttpClient, credential: ServiceCredential): VaultClient {
  const headers = async () => ({ authorization: await credential.authorization() });
  return {
    async stored(userId) {
      const body = await client.call({ path: `/internal/users/${userId}/credentials`, headers: await headers(), schema: StoredCredentialSummariesSchema });
      return body.items;
    },
    async release(userId, slug) {
      try {
        const body = await client.call({ path: `/internal/users/${userId}/credentials/${encodeURIComponent(slug)}`, headers: await headers(), schema: ReleasedCredentialSchema });
        if ('token' in body.secret) return { type: body.type === 'basic' ? 'wes-bearer' : body.type, token: body.secret.token };
        return { type: 'basic', username: body.secret.username, password: body.secret.password };
      } catch (err) {
        if (notFound(err)) return null;
        throw err;
      }
    },
  };
}
