/**
 * `npm run demo`: the platform offline, ready for a first job. Starts the Cloudgene and WES fakes on
 * loopback, then the standalone platform (embedded PGlite and in-memory KV in a fresh DEMO_DATA_DIR,
 * EXTERNAL_CALLS off) with both fakes in its catalogue, registers the demo user with a vault token for
 * each, writes a small VCF cohort, and prints the URLs, the user and the curl commands of one job.
 * Ctrl-C / SIGTERM stops everything. `npm run demo:job` drives a job through it.
 *
 * DATABASE_URL and REDIS_URL are deliberately not used: the demo is always the embedded setup, so it
 * never touches a real database. Variables: DEMO_BASE_PORT (8000), DEMO_CLOUDGENE_PORT (8010),
 * DEMO_WES_PORT (8011), DEMO_DATA_DIR (./data/demo), LOG_LEVEL (warn).
 */
import { ConfigError } from '@shared/config.ts';
import { onShutdownSignal } from '@shared/serve.ts';
import { join } from 'node:path';
import { SERVICES } from '../services/catalog.ts';
import { standalonePort, startStandalone, type StandalonePlatform } from '../services/standalone-platform.ts';
import { demoApi } from './demo/demo-api.ts';
import { DemoDirError, freshDemoDir } from './demo/demo-data-dir.ts';
import { demoInstructions } from './demo/demo-instructions.ts';
import { busyPorts } from './demo/demo-ports.ts';
import { demoCatalogue, startDemoServers, type DemoServers } from './demo/demo-servers.ts';
import { DEMO_REQUEST, DEMO_SERVICES, DEMO_USER, demoSettings, MANIFEST_NAME, type DemoManifest, type DemoSettings } from './demo/demo-settings.ts';
import { setUpDemoUser } from './demo/demo-user.ts';
import { writeDemoVcfs } from './demo/demo-vcfs.ts';

const started = performance.now();
const say = (line: string) => process.stdout.write(`${line}\n`);
const fail = (message: string, code = 1): never => {
  process.stderr.write(`demo: ${message}\n`);
  process.exit(code);
};

let settings: DemoSettings;
try {
  settings = demoSettings(process.env);
} catch (err) {
  if (err instanceof ConfigError) fail(err.message, 2);
  throw err;
}

const platformPorts = SERVICES.map((d) => standalonePort(d, settings.DEMO_BASE_PORT));
const wanted: [string, number][] = [
  ...platformPorts.map((port): [string, number] => ['DEMO_BASE_PORT', port]),
  ['DEMO_CLOUDGENE_PORT', settings.DEMO_CLOUDGENE_PORT],
  ['DEMO_WES_PORT', settings.DEMO_WES_PORT],
];
if (new Set(wanted.map(([, port]) => port)).size !== wanted.length) {
  fail(`the platform (${platformPorts[0]}–${platformPorts.at(-1)}) and the fakes (${settings.DEMO_CLOUDGENE_PORT}, ${settings.DEMO_WES_PORT}) need nine different ports`, 2);
}
const busy = new Set(busyPorts(wanted.map(([, port]) => port)));
if (busy.size > 0) {
  const variables = [...new Set(wanted.filter(([, port]) => busy.has(port)).map(([name]) => name))];
  fail(`port(s) ${[...busy].join(', ')} already in use (another demo or npm start?); stop it or set ${variables.join(' / ')}`, 2);
}

say(`Starting the offline demo of the Federated Imputation Platform`);
try {
  await freshDemoDir(settings.DEMO_DATA_DIR);
} catch (err) {
  if (err instanceof DemoDirError) fail(err.message, 2);
  throw err;
}
say(`  demo data in ${settings.DEMO_DATA_DIR} (wiped: every start begins empty)`);

let servers: DemoServers | undefined;
let platform: StandalonePlatform | undefined;
const stopAll = async () => {
  await platform?.stop();
  await servers?.stop();
};
onShutdownSignal(async () => {
  say('demo: stopping');
  await stopAll();
  say('demo: stopped');
});

try {
  servers = await startDemoServers({ cloudgene: settings.DEMO_CLOUDGENE_PORT, wes: settings.DEMO_WES_PORT });
  say(`  fake servers on ${servers.cloudgene.url} (Cloudgene) and ${servers.wes.url} (WES)`);
  const catalogueFile = join(settings.DEMO_DATA_DIR, 'catalogue.json');
  await Bun.write(catalogueFile, JSON.stringify(demoCatalogue(servers), null, 2));
  const vcfPaths = await writeDemoVcfs(join(settings.DEMO_DATA_DIR, 'vcf'));

  say('  starting the platform (the embedded database is created fresh: a few seconds)');
  platform = await startStandalone({
    basePort: settings.DEMO_BASE_PORT,
    env: {
      LOG_LEVEL: settings.LOG_LEVEL,
      DATA_DIR: settings.DEMO_DATA_DIR,
      CATALOGUE_FILE: catalogueFile,
      EXTERNAL_CALLS: 'false',
      OPERATOR_TOKENS: JSON.stringify(servers.operatorTokens),
      // A job through the fakes takes seconds rather than the production schedule's half minute.
      POLL_FIRST_MS: '500',
      POLL_MAX_MS: '2000',
      WORKER_IDLE_MS: '250',
    },
  });
  say(`  platform up in ${(platform.startMs / 1000).toFixed(1)} s; registering the demo user`);
  const api = demoApi(platform.url);
  const token = await setUpDemoUser(api, servers.userTokens);
  const health = await firstProbes(api, token);

  const manifest: DemoManifest = {
    gatewayUrl: platform.url,
    username: DEMO_USER.username,
    files: vcfPaths,
    targets: [
      { serviceId: DEMO_SERVICES.cloudgene, panel: DEMO_REQUEST.panel },
      { serviceId: DEMO_SERVICES.wes, panel: DEMO_REQUEST.panel },
    ],
    build: DEMO_REQUEST.build,
    population: DEMO_REQUEST.population,
  };
  await Bun.write(join(settings.DEMO_DATA_DIR, MANIFEST_NAME), JSON.stringify(manifest, null, 2));

  // demo:job finds the gateway and the VCFs in the manifest; it only needs to know where that is.
  const demoJobEnv = settings.DEMO_DATA_DIR !== demoSettings({}).DEMO_DATA_DIR ? `DEMO_DATA_DIR=${settings.DEMO_DATA_DIR} ` : '';
  say(
    demoInstructions({
      gatewayUrl: platform.url,
      services: platform.services,
      fakes: { cloudgene: servers.cloudgene.url, wes: servers.wes.url },
      health,
      dataDir: settings.DEMO_DATA_DIR,
      database: `embedded PGlite, ${platform.kvKind} KV`,
      vcfPaths,
      readySeconds: (performance.now() - started) / 1000,
      demoJobEnv,
    }),
  );
} catch (err) {
  process.stderr.write(`demo: could not start: ${err instanceof Error ? err.message : String(err)}\n`);
  await stopAll().catch(() => {});
  process.exit(1);
}

/** The registry probes the fakes within a second of starting; waits (up to 5 s) for that verdict so the banner can show it. */
async function firstProbes(api: ReturnType<typeof demoApi>, token: string): Promise<Record<string, string>> {
  let health: Record<string, string> = {};
  for (let i = 0; i < 50; i++) {
    const listed = await api.json('read the catalogue', 'GET', '/api/services', { token });
    health = Object.fromEntries((listed.items as { slug: string; health: { status: string } }[]).map((s) => [s.slug, s.health.status]));
    if (Object.values(health).every((status) => status !== 'unknown')) break;
    await Bun.sleep(100);
  }
  return health;
}
