/**
 * The demo's "external" imputation servers: the Cloudgene and GA4GH WES fakes from tests/fakes on fixed
 * loopback ports, each knowing the demo user's token and an operator token (for the registry's health
 * probes), and moving a job on by one state per status poll so it finishes without anyone steering it.
 * Also the catalogue file that puts both in the registry.
 */
import { DEFAULT_PANELS, makeFakeJwt, startCloudgeneFake, type CloudgeneFake } from '../../tests/fakes/cloudgene.ts';
import { startWesFake, type WesFake } from '../../tests/fakes/wes.ts';
import { DEMO_REQUEST, DEMO_SERVICES, DEMO_USER } from './demo-settings.ts';
import { DEMO_CHROMOSOMES } from './demo-vcfs.ts';

export interface DemoServers {
  cloudgene: CloudgeneFake;
  wes: WesFake;
  /** The tokens the demo user stores in the vault: a Cloudgene API token (X-Auth-Token) and a WES bearer token. */
  userTokens: { cloudgene: string; wes: string };
  /** `OPERATOR_TOKENS` for service-registry: the operator's own token per slug. */
  operatorTokens: Record<string, string>;
  stop(): Promise<void>;
}

/** Starts both fakes; if the second cannot start, the first is stopped again. */
export async function startDemoServers(ports: { cloudgene: number; wes: number }): Promise<DemoServers> {
  const userTokens = { cloudgene: makeFakeJwt(DEMO_USER.username), wes: `demo-wes-${crypto.randomUUID()}` };
  const operator = { cloudgene: makeFakeJwt('operator'), wes: `operator-wes-${crypto.randomUUID()}` };
  const cloudgene = await startCloudgeneFake({
    port: ports.cloudgene,
    tokens: { [userTokens.cloudgene]: DEMO_USER.username, [operator.cloudgene]: 'operator' },
    progression: 'perPoll',
    chromosomes: [...DEMO_CHROMOSOMES],
    serverName: 'Demo Imputation Server (fake)',
  });
  let wes: WesFake;
  try {
    wes = await startWesFake({
      port: ports.wes,
      version: '1.1.0',
      tokens: [userTokens.wes, operator.wes],
      autoAdvance: 'poll',
      // Real time rather than the fake's fixed 2025 clock, so run logs read like the job's own timeline.
      clock: { now: () => Date.now() },
    });
  } catch (err) {
    await cloudgene.stop();
    throw err;
  }
  return {
    cloudgene,
    wes,
    userTokens,
    operatorTokens: { [DEMO_SERVICES.cloudgene]: operator.cloudgene, [DEMO_SERVICES.wes]: operator.wes },
    async stop() {
      await Promise.all([cloudgene.stop(), wes.stop()]);
    },
  };
}

/** The registry's initial catalogue (`CATALOGUE_FILE` format): the two fakes, with their panels. */
export function demoCatalogue(servers: Pick<DemoServers, 'cloudgene' | 'wes'>) {
  const populations = (panel: (typeof DEFAULT_PANELS)[number]) => panel.populations.map((p) => ({ id: p.id, name: p.label }));
  const wesPanel = DEFAULT_PANELS.find((p) => p.id === DEMO_REQUEST.panel)!;
  return {
    $comment: 'Written by scripts/demo.ts at every start: the local fakes of tests/fakes, on loopback.',
    services: [
      {
        slug: DEMO_SERVICES.cloudgene,
        name: 'Demo Cloudgene server (fake)',
        protocol: 'cloudgene',
        baseUrl: servers.cloudgene.url,
        appId: 'imputationserver2',
        description: 'The Cloudgene 3 / imputationserver2 fake of tests/fakes/cloudgene.ts, running in the demo process.',
        location: { country: 'Localhost', city: 'Loopback' },
        limits: { maxActiveJobsPerUser: 2 },
        supportedBuilds: ['hg19', 'hg38'],
        credentialType: 'cloudgene-token',
        panels: DEFAULT_PANELS.map((panel) => ({
          externalId: panel.id,
          version: panel.version,
          externalKey: `apps@${panel.id}@${panel.version}`,
          displayName: panel.label,
          build: panel.build,
          populations: populations(panel),
        })),
      },
      {
        slug: DEMO_SERVICES.wes,
        name: 'Demo GA4GH WES node (fake)',
        protocol: 'ga4gh-wes',
        baseUrl: servers.wes.url,
        description: 'The GA4GH WES 1.1 fake of tests/fakes/wes.ts, running in the demo process.',
        location: { country: 'Localhost', city: 'Loopback' },
        supportedBuilds: ['hg19', 'hg38'],
        credentialType: 'wes-bearer',
        // WES does not report reference panels: the operator lists what the node's workflow offers.
        panels: [{ externalId: wesPanel.id, displayName: `${wesPanel.label} (WES workflow)`, build: wesPanel.build, populations: populations(wesPanel) }],
      },
    ],
  };
}
