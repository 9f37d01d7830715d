/**
 * Turns a `POST /jobs` body into the jobs to create, checking everything a server would otherwise
 * reject hours later: the files (the caller's, validated, one sample set), each target (service
 * active, panel offered with the build and population, limits) and the caller's stored credentials.
 * Every reason is collected, so one 422 lists them all.
 */
import { HttpProblem, type ProblemFieldError } from '@shared/errors.ts';
import type { JobCreate } from '@shared/schemas/jobs.ts';
import type { ImputationService, ReferencePanel } from '@shared/schemas/registry.ts';
import type { JobRequest, JobTarget } from './domain.ts';
import type { FilesClient, InternalFile, RegistryClient, VaultClient } from './platform-clients.ts';

export interface RequestChecks {
  registry: RegistryClient;
  files: FilesClient;
  vault: VaultClient;
}

export interface PlannedJobs {
  request: JobRequest;
  targets: JobTarget[];
}

const KEY = /^apps@([^@]+)@([^@]+)$/;

function panelMatches(panel: ReferencePanel, reference: string): boolean {
  const key = KEY.exec(reference);
  if (key) return panel.externalId === key[1] && (panel.version === null || panel.version === key[2]);
  return panel.externalId === reference || panel.externalKey === reference;
}

function samplesOf(file: InternalFile): number | null {
  const samples = file.validation?.stats?.samples;
  return typeof samples === 'number' ? samples : null;
}

function targetOf(service: ImputationService, panel: ReferencePanel): JobTarget {
  return {
    service: {
      id: service.id,
      slug: service.slug,
      name: service.name,
      protocol: service.protocol,
      baseUrl: service.baseUrl,
      appId: service.appId,
      credentialType: service.credentialType,
      limits: service.limits,
    },
    panel: { id: panel.id, externalId: panel.externalId, externalKey: panel.externalKey, displayName: panel.displayName, build: panel.build },
  };
}

/** Checks the request for `userId`; answers what to create or throws one 422 listing every problem. */
export async function planJobs(deps: RequestChecks, userId: string, body: JobCreate): Promise<PlannedJobs> {
  const errors: ProblemFieldError[] = [];
  const fail = (path: string, code: string, message: string) => errors.push({ path, code, message });

  const files = await Promise.all(body.inputFileIds.map((id) => deps.files.file(id)));
  const inputs: JobRequest['inputs'] = [];
  files.forEach((file, i) => {
    const path = `inputFileIds.${i}`;
    // Another user's file is reported exactly like a missing one.
    if (!file || file.userId !== userId) return fail(path, 'file_not_found', `No file ${body.inputFileIds[i]} among your files.`);
    if (file.kind !== 'input') return fail(path, 'not_an_input', `${file.name} is a result file, not an input.`);
    if (!file.validation) return fail(path, 'file_not_validated', `${file.name} was not validated as a VCF (name it *.vcf.gz).`);
    if (!file.validation.ok) {
      const first = file.validation.errors[0];
      return fail(path, 'file_failed_validation', `${file.name} failed validation${first ? `: ${first.message}` : ''}.`);
    }
    inputs.push({ id: file.id, name: file.name, sizeBytes: file.sizeBytes, samples: samplesOf(file) });
  });
  const sampleCounts = new Set(inputs.map((f) => f.samples).filter((n): n is number => n !== null));
  if (sampleCounts.size > 1) fail('inputFileIds', 'sample_count_mismatch', `The files hold different numbers of samples (${[...sampleCounts].join(', ')}); every file must contain the same samples.`);
  const samples = sampleCounts.size === 1 ? [...sampleCounts][0]! : null;

  const stored = await deps.vault.stored(userId);
  const credentialFor = new Map(stored.map((c) => [c.serviceId, c]));

  const targets: JobTarget[] = [];
  const checkTarget = (path: string, service: ImputationService, panel: ReferencePanel) => {
    const before = errors.length;
    if (!service.isActive) fail(path, 'service_inactive', `${service.name} is not taking jobs at the moment.`);
    if (!service.supportedBuilds.includes(body.build)) fail(path, 'build_unsupported', `${service.name} does not accept ${body.build} input.`);
    if (body.population !== 'off' && !panel.populations.some((p) => p.id.toLowerCase() === body.population.toLowerCase())) {
      const offered = panel.populations.map((p) => p.id).join(', ') || 'none';
      fail(path, 'population_not_offered', `${panel.displayName} on ${service.name} has no population ${body.population} (offered: ${offered}).`);
    }
    const { minSamples, maxSamples, maxFileSizeBytes } = service.limits;
    if (samples !== null && minSamples !== undefined && samples < minSamples) fail(path, 'too_few_samples', `${service.name} needs at least ${minSamples} samples; the files hold ${samples}.`);
    if (samples !== null && maxSamples !== undefined && samples > maxSamples) fail(path, 'too_many_samples', `${service.name} accepts at most ${maxSamples} samples; the files hold ${samples}.`);
    for (const file of inputs) {
      if (maxFileSizeBytes !== undefined && file.sizeBytes > maxFileSizeBytes) fail(path, 'file_too_large', `${file.name} is larger than ${service.name} accepts (${maxFileSizeBytes} bytes).`);
    }
    if (service.credentialType !== 'none') {
      const credential = credentialFor.get(service.slug);
      if (!credential) fail(path, 'credential_missing', `Store your ${service.name} token first (PUT /api/users/me/credentials/${service.slug}).`);
      else if (credential.expired) fail(path, 'credential_expired', `Your ${service.name} token has expired; store a new one.`);
    }
    if (errors.length === before) targets.push(targetOf(service, panel));
  };

  if (body.targets === 'auto') {
    const found = await deps.registry.discover({
      panel: body.panel,
      build: body.build,
      population: body.population === 'off' ? undefined : body.population,
      samples: samples ?? undefined,
      files: inputs.length ? inputs.map((f) => f.sizeBytes).join(',') : undefined,
    });
    // The best-ranked service the caller can use; the registry already dropped those that cannot run it.
    const usable = found.candidates.find((c) => c.service.credentialType === 'none' || credentialFor.get(c.service.slug)?.expired === false);
    if (usable) checkTarget('targets', usable.service, usable.panel);
    else {
      const reasons = [
        ...found.candidates.map((c) => `${c.service.name}: no stored credential`),
        ...found.excluded.map((e) => `${e.name}: ${e.reasons.map((r) => r.detail).join('; ')}`),
      ];
      fail('targets', 'no_service_available', `No service can run this request for you${reasons.length ? ` (${reasons.join(' | ')})` : ''}.`);
    }
  } else {
    const services = await Promise.all(body.targets.map((t) => deps.registry.service(t.serviceId)));
    body.targets.forEach((target, i) => {
      const path = `targets.${i}`;
      const service = services[i];
      if (!service || service.retiredAt) return fail(path, 'service_not_found', `No service ${target.serviceId} in the catalogue.`);
      const panel = service.panels.find((p) => panelMatches(p, target.panel));
      if (!panel) return fail(path, 'panel_not_offered', `${service.name} does not offer panel ${target.panel}.`);
      checkTarget(path, service, panel);
    });
    const ids = targets.map((t) => `${t.service.id}\u0000${t.panel.id}`);
    if (new Set(ids).size !== ids.length) fail('targets', 'duplicate_target', 'The same service and panel are named twice.');
  }

  if (errors.length > 0) {
    throw new HttpProblem(422, 'job_invalid', `The job cannot run: ${errors.map((e) => e.message).join(' ')}`, { errors });
  }
  return {
    request: { inputFileIds: body.inputFileIds, build: body.build, phasing: body.phasing, population: body.population, mode: body.mode, r2Filter: body.r2Filter, inputs },
    targets,
  };
}
