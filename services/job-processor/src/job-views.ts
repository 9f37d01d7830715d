/** Stored job rows → the API's job shapes (shared/schemas/jobs.ts). */
import type { JobDetail, JobSummary } from '@shared/schemas/jobs.ts';
import type { JobHistoryRow, JobRequest, JobResultRow, JobRow, JobTarget } from './domain.ts';

const iso = (d: Date | null) => (d ? d.toISOString() : null);

function jobCore(row: JobRow) {
  const request = row.request as JobRequest;
  const target = row.target as JobTarget | null;
  return {
    id: row.id,
    parentId: row.parentId,
    name: row.name,
    description: row.description,
    state: row.state as JobSummary['state'],
    progress: row.progress,
    service: target ? { id: target.service.id, slug: target.service.slug, name: target.service.name, protocol: target.service.protocol } : null,
    panel: target?.panel.externalId ?? null,
    request: {
      inputFileIds: request.inputFileIds ?? [],
      build: request.build,
      phasing: request.phasing,
      population: request.population,
      mode: request.mode,
      r2Filter: request.r2Filter,
    },
    attempt: row.attempt,
    externalId: row.externalId,
    externalState: row.externalState,
    error: row.errorCode ? { code: row.errorCode, message: row.errorMessage, hint: row.errorHint } : null,
    cancelRequested: row.cancelRequestedAt !== null,
    resultsExpireAt: iso(row.resultsExpireAt),
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
    startedAt: iso(row.startedAt),
    finishedAt: iso(row.finishedAt),
  };
}

export function jobSummary(row: JobRow, children: JobRow[]): JobSummary {
  return {
    ...jobCore(row),
    children: children.map((c) => {
      const target = c.target as JobTarget | null;
      return { id: c.id, service: target?.service.slug ?? null, panel: target?.panel.externalId ?? null, state: c.state as JobSummary['state'], progress: c.progress };
    }),
  };
}

export function resultView(row: JobResultRow, job: JobRow): JobDetail['results'][number] {
  const target = job.target as JobTarget | null;
  return {
    jobId: row.jobId,
    name: row.name,
    state: row.state as 'pending' | 'stored' | 'failed',
    fileId: row.fileId,
    sizeBytes: row.sizeBytes,
    error: row.error,
    service: target?.service.slug ?? null,
    panel: target?.panel.externalId ?? null,
    externalJobId: job.externalId,
  };
}

export function jobDetail(row: JobRow, children: JobRow[], history: JobHistoryRow[], results: JobResultRow[]): JobDetail {
  const byId = new Map([row, ...children].map((j) => [j.id, j]));
  return {
    ...jobCore(row),
    children: children.map(jobCore),
    history: history.filter((h) => h.jobId === row.id).map((h) => ({ at: h.at.toISOString(), state: h.state, message: h.message })),
    results: results.map((r) => resultView(r, byId.get(r.jobId)!)),
  };
}
