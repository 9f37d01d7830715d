/**
 * What `npm run demo` prints once everything is up: where things run, who to sign in as, and the curl
 * commands that take one job from upload to downloaded results (real URLs, paths and slugs filled in).
 */
import { DEMO_REQUEST, DEMO_SERVICES, DEMO_USER } from './demo-settings.ts';
import { DEMO_SAMPLE_COUNT } from './demo-vcfs.ts';

export interface DemoFacts {
  gatewayUrl: string;
  services: readonly { name: string; url: string }[];
  fakes: { cloudgene: string; wes: string };
  /** The registry's health verdict per slug (`healthy`, or `unknown` before its first probe). */
  health: Record<string, string>;
  dataDir: string;
  database: string;
  vcfPaths: readonly string[];
  readySeconds: number;
  /** Set when demo:job is not on its default gateway and data directory: the variables it needs. */
  demoJobEnv: string;
}

/** The ready banner; its first line is `Demo ready in <s> s` (tests wait for it). */
export function demoInstructions(facts: DemoFacts): string {
  const api = `${facts.gatewayUrl}/api`;
  const auth = '-H "authorization: Bearer $TOKEN"';
  const firstVcf = facts.vcfPaths[0]!;
  const job = JSON.stringify({
    name: 'demo cohort',
    inputFileIds: ['FILE_ID'],
    build: DEMO_REQUEST.build,
    population: DEMO_REQUEST.population,
    targets: [
      { serviceId: DEMO_SERVICES.cloudgene, panel: DEMO_REQUEST.panel },
      { serviceId: DEMO_SERVICES.wes, panel: DEMO_REQUEST.panel },
    ],
  }).replace('"FILE_ID"', `"'"$FILE"'"`);
  const lines = [
    '',
    `Demo ready in ${facts.readySeconds.toFixed(1)} s. Offline: only loopback, EXTERNAL_CALLS off.`,
    '',
    'Platform (standalone, one process):',
    ...facts.services.map((s) => `  ${s.name.padEnd(17)} ${s.url}`),
    `  ${'API docs'.padEnd(17)} ${facts.gatewayUrl}/docs`,
    'Fake imputation servers (in the catalogue; a job moves one state per status poll):',
    `  ${DEMO_SERVICES.cloudgene.padEnd(17)} ${facts.fakes.cloudgene}   Cloudgene 3 / imputationserver2, ${facts.health[DEMO_SERVICES.cloudgene] ?? 'unknown'}`,
    `  ${DEMO_SERVICES.wes.padEnd(17)} ${facts.fakes.wes}   GA4GH WES 1.1, ${facts.health[DEMO_SERVICES.wes] ?? 'unknown'}`,
    '',
    `Demo user: ${DEMO_USER.username} / ${DEMO_USER.password} (researcher; tokens for both servers are in the vault)`,
    `Demo data: ${facts.dataDir} (${facts.database}; wiped at every start, so no stale catalogue survives a re-run)`,
    `Demo VCFs (bgzipped, ${DEMO_SAMPLE_COUNT} samples, ${DEMO_REQUEST.build}):`,
    ...facts.vcfPaths.map((p) => `  ${p}`),
    '',
    `One job, upload to results, in one go:  ${facts.demoJobEnv}npm run demo:job`,
    '',
    'Or step by step (needs curl and jq):',
    `  API=${api}`,
    '  # 1. sign in',
    `  TOKEN=$(curl -s $API/auth/login -H 'content-type: application/json' -d '{"login":"${DEMO_USER.username}","password":"${DEMO_USER.password}"}' | jq -r .accessToken)`,
    '  # 2. upload a VCF; it is validated while it streams and the answer holds the report',
    `  FILE=$(curl -s $API/files ${auth} -F build=${DEMO_REQUEST.build} -F file=@${firstVcf} | tee /dev/stderr | jq -r .id)`,
    '  # 3. submit one federated job to both servers',
    `  JOB=$(curl -s $API/jobs ${auth} -H 'content-type: application/json' -d '${job}' | jq -r .id)`,
    '  # 4. watch it (done in a few seconds; or follow: curl -N $API/notifications/stream ' + auth + ')',
    `  curl -s $API/jobs/$JOB ${auth} | jq '{state, children: [.children[] | {server: .service.slug, state, externalState}]}'`,
    '  # 5. the results, now in platform storage, and the password of the result zips',
    `  curl -s $API/jobs/$JOB/results ${auth} | jq -r '.items[] | [.fileId, .service, .name] | @tsv'`,
    `  curl -s $API/jobs/$JOB/password ${auth}`,
    '  # 6. download one (its sha256 is in: curl -s $API/files/<fileId> ' + auth + ')',
    `  curl -s -OJ $API/files/<fileId>/content ${auth}`,
    '',
    'Ctrl-C stops the demo.',
    '',
  ];
  return lines.join('\n');
}
