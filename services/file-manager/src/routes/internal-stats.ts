/**
 * Storage statistics for monitoring's admin dashboard: files and bytes held, by kind (users' inputs,
 * retrieved results), and how many users hold any. Numbers only, never whose or which.
 */
import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import { storedFiles } from '@db/schema/files.ts';
import type { AppEnv } from '@shared/app.ts';
import { requireService } from '@shared/auth.ts';
import type { Db } from '@shared/db.ts';
import { jsonContent } from '@shared/openapi.ts';
import { problemResponses } from '@shared/schemas/problem.ts';
import { StorageStatsSchema, type StorageStats } from '@shared/schemas/stats.ts';
import { count, countDistinct, sql } from 'drizzle-orm';

const KINDS = ['input', 'result'] as const;

const storageStats = createRoute({
  method: 'get',
  path: '/internal/stats/storage',
  tags: ['Internal'],
  security: [{ bearerAuth: [] }],
  summary: 'Files and bytes stored, by kind (input, result), and users holding files (monitoring only)',
  middleware: [requireService('monitoring')] as const,
  responses: { 200: { description: 'The statistics.', ...jsonContent(StorageStatsSchema) }, ...problemResponses(401, 403) },
});

/** `GET /internal/stats/storage`; `db` is file-manager's database. */
export function internalStatsRoutes(deps: { db: Db }) {
  const app = new OpenAPIHono<AppEnv>();
  app.openapi(storageStats, async (c) => c.json(await readStorageStats(deps.db), 200));
  return app;
}

async function readStorageStats(db: Db): Promise<StorageStats> {
  // bigint sums come back as strings from the driver; Number is exact up to 8 PiB.
  const bytes = sql<number>`coalesce(sum(${storedFiles.sizeBytes}), 0)`.mapWith(Number);
  const [byKind, [holders]] = await Promise.all([
    db.select({ kind: storedFiles.kind, files: count(), bytes }).from(storedFiles).groupBy(storedFiles.kind),
    db.select({ users: countDistinct(storedFiles.userId) }).from(storedFiles),
  ]);
  const stats: StorageStats = {
    byKind: { input: { files: 0, bytes: 0 }, result: { files: 0, bytes: 0 } },
    totalFiles: 0,
    totalBytes: 0,
    usersWithFiles: holders?.users ?? 0,
  };
  for (const row of byKind) {
    stats.totalFiles += row.files;
    stats.totalBytes += row.bytes;
    if ((KINDS as readonly string[]).includes(row.kind)) stats.byKind[row.kind as (typeof KINDS)[number]] = { files: row.files, bytes: row.bytes };
  }
  return stats;
}
