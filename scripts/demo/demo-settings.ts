/**
 * What the offline demo is made of (user, catalogue slugs, panel, request) and the variables that move
 * it (ports, data directory), parsed once with zod for `scripts/demo.ts` and `scripts/demo-job.ts`.
 */
import { z } from '@hono/zod-openapi';
import { parseEnv, type Env } from '@shared/config.ts';
import { resolve } from 'node:path';

const REPO_ROOT = resolve(import.meta.dir, '../..');

/** The account the demo registers; the password is printed, so it protects nothing but the demo. */
export const DEMO_USER = {
  username: 'demo',
  password: 'Genotype-Trial-42',
  email: 'demo@example.org',
  firstName: 'Demo',
  lastName: 'Researcher',
} as const;

/** Catalogue slugs of the two fake servers (also the vault keys and the job targets). */
export const DEMO_SERVICES = { cloudgene: 'demo-cloudgene', wes: 'demo-wes' } as const;

/** What the demo job asks for: a panel both fakes offer, its build, a population of that panel. */
export const DEMO_REQUEST = { panel: 'hapmap-2', build: 'hg19', population: 'eur' } as const;

/** The manifest `npm run demo` leaves in its data directory for `npm run demo:job`. */
export const MANIFEST_NAME = 'demo.json';
/** Marks a directory as the demo's own, so a wipe never removes anything else. */
export const MARKER_NAME = '.fip-demo';

const port = (fallback: number) => z.coerce.number().int().min(1).max(65_535).default(fallback);
const logLevel = z.enum(['debug', 'info', 'warn', 'error', 'silent']);

const demoEnvSchema = z.object({
  /** Gateway port; the six services follow it (8000 → 8000–8006). */
  DEMO_BASE_PORT: port(8000).refine((p) => p <= 65_535 - 6, 'leaves no room for the six ports after it'),
  DEMO_CLOUDGENE_PORT: port(8010),
  DEMO_WES_PORT: port(8011),
  /** Everything the demo writes; wiped at every `npm run demo`. */
  DEMO_DATA_DIR: z.string().min(1).default(resolve(REPO_ROOT, 'data/demo')),
  /** The services' log level; `warn` keeps the terminal for the instructions. */
  LOG_LEVEL: logLevel.default('warn'),
});

const demoJobEnvSchema = z.object({
  DEMO_DATA_DIR: demoEnvSchema.shape.DEMO_DATA_DIR,
  /** The gateway of a running demo; default: the one the demo's manifest names, else http://127.0.0.1:8000. */
  DEMO_GATEWAY_URL: z.url({ protocol: /^https?$/ }).optional(),
  /** Where result files are written; default `<DEMO_DATA_DIR>/downloads`. */
  DEMO_DOWNLOAD_DIR: z.string().min(1).optional(),
  /** The whole run gives up (exit 1) after this long. */
  DEMO_JOB_TIMEOUT_SECONDS: z.coerce.number().min(5).max(3600).default(120),
});

export type DemoSettings = z.infer<typeof demoEnvSchema>;
export type DemoJobSettings = z.infer<typeof demoJobEnvSchema>;

/** The demo's settings from `env`; throws a ConfigError listing every bad key. */
export function demoSettings(env: Env): DemoSettings {
  const settings = parseEnv(demoEnvSchema, env);
  return { ...settings, DEMO_DATA_DIR: resolve(settings.DEMO_DATA_DIR) };
}

/** demo:job's settings from `env`; throws a ConfigError listing every bad key. */
export function demoJobSettings(env: Env): DemoJobSettings {
  const settings = parseEnv(demoJobEnvSchema, env);
  return { ...settings, DEMO_DATA_DIR: resolve(settings.DEMO_DATA_DIR) };
}

/** What `npm run demo` tells `npm run demo:job` (written as `<data dir>/demo.json`). */
export const DemoManifestSchema = z.object({
  gatewayUrl: z.string(),
  username: z.string(),
  /** Absolute paths of the demo VCFs. */
  files: z.array(z.string()).min(1),
  targets: z.array(z.object({ serviceId: z.string(), panel: z.string() })).min(1),
  build: z.enum(['hg19', 'hg38']),
  population: z.string(),
});
export type DemoManifest = z.infer<typeof DemoManifestSchema>;
