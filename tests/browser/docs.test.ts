/**
 * The gateway's `/docs` in a real browser (Debian's Chromium driven by playwright-core): the page and
 * everything it loads come from the gateway itself with no failed request, no console error (a CSP
 * violation is one), the jobs and files operations are listed, and a request sent from the page's
 * "Try it out" with the token entered under "Authorize" comes back with the user's real data.
 *
 * Skipped, saying so, where /usr/bin/chromium is missing (`.ci/run` installs it when apt can).
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { parseEnv } from '@shared/config.ts';
import { createKv } from '@shared/kv-factory.ts';
import { createLogger } from '@shared/log.ts';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { definition as gatewayDefinition } from '../../services/api-gateway/src/service.ts';
import { DOCS_CSP } from '../../services/api-gateway/src/security-headers.ts';
import { json } from '../support/json.ts';
import { startPlatform, type Platform, type SignedInUser } from '../support/platform.ts';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) console.warn(`tests/browser/docs.test.ts: SKIPPED, no Chromium at ${CHROMIUM} (apt-get install -y chromium)`);

/** What the page did while it was open. */
interface PageRecord {
  requests: string[];
  failed: string[];
  errorResponses: string[];
  consoleErrors: string[];
}

function record(page: Page): PageRecord {
  const seen: PageRecord = { requests: [], failed: [], errorResponses: [], consoleErrors: [] };
  page.on('request', (request) => seen.requests.push(request.url()));
  page.on('requestfailed', (request) => seen.failed.push(`${request.method()} ${request.url()}: ${request.failure()?.errorText}`));
  page.on('response', (response) => {
    if (response.status() >= 400) seen.errorResponses.push(`${response.status()} ${response.request().method()} ${response.url()}`);
  });
  page.on('console', (message) => {
    if (message.type() === 'error') seen.consoleErrors.push(message.text());
  });
  page.on('pageerror', (error) => seen.consoleErrors.push(`uncaught: ${error.message}`));
  return seen;
}

/** The gateway built from its definition as the runner builds it (no upstream is called by these routes). */
async function buildGateway(extra: Record<string, string> = {}) {
  const env = parseEnv(gatewayDefinition.envSchema, { HOST: '127.0.0.1', PORT: '0', ...extra });
  const built = await gatewayDefinition.build(env as never, { kv: await createKv({}), logger: createLogger({ level: 'silent' }) } as never);
  return built.app;
}

describe('gateway /docs over HTTP', () => {
  const swaggerUiDist = dirname(Bun.resolveSync('swagger-ui-dist/package.json', import.meta.dir));

  it('serves the page without inline script under the docs CSP, revalidated on every load', async () => {
    const app = await buildGateway();
    const res = await app.request('/docs');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(res.headers.get('cache-control')).toBe('no-cache');
    expect(res.headers.get('content-security-policy')).toBe(DOCS_CSP);
    const page = await res.text();
    expect(page).not.toMatch(/<script>|<script [^>]*>[^<]/);
    expect(page).not.toMatch(/https?:\/\//);
    const scripts = [...page.matchAll(/<script src="([^"]+)"><\/script>/g)].map((m) => m[1]);
    expect(scripts.map((src) => new URL(src!, 'http://gw').pathname)).toEqual(['/docs/assets/swagger-ui-bundle.js', '/docs/assets/docs-init.js']);
  });

  it('serves swagger-ui-dist’s own bytes with their content type, an ETag and a day’s caching, and 304 on a matching If-None-Match', async () => {
    const app = await buildGateway();
    const page = await (await app.request('/docs')).text();
    const linked = [...page.matchAll(/(?:src|href)="(\/docs\/assets\/[^"]+)"/g)].map((m) => m[1]!);
    expect(linked).toHaveLength(4);
    const types: Record<string, string> = { js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8', png: 'image/png' };
    for (const url of linked) {
      const name = new URL(url, 'http://gw').pathname.split('/').at(-1)!;
      const res = await app.request(url);
      expect({ name, status: res.status, type: res.headers.get('content-type'), cache: res.headers.get('cache-control') }).toEqual({
        name,
        status: 200,
        type: types[name.split('.').at(-1)!]!,
        cache: 'public, max-age=86400',
      });
      const body = new Uint8Array(await res.arrayBuffer());
      if (name !== 'docs-init.js') expect(body).toEqual(new Uint8Array(await readFile(join(swaggerUiDist, name))));
      const etag = res.headers.get('etag')!;
      expect(etag).toMatch(/^"[\w-]+"$/);
      const again = await app.request(url, { headers: { 'if-none-match': etag } });
      expect(again.status).toBe(304);
      expect(await again.text()).toBe('');
    }
  });

  it('answers any other asset name with the 404 problem: only the loaded files are served, never a path on disk', async () => {
    const app = await buildGateway();
    for (const path of ['/docs/assets/swagger-ui.js', '/docs/assets/..%2F..%2Fpackage.json', '/docs/assets/']) {
      const res = await app.request(path);
      expect({ path, status: res.status, type: res.headers.get('content-type') }).toEqual({ path, status: 404, type: 'application/problem+json' });
    }
  });

  it('refuses to start when DOCS_ASSETS_DIR lacks the bundle, naming the missing file', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'fip-docs-assets-'));
    try {
      await expect(buildGateway({ DOCS_ASSETS_DIR: empty })).rejects.toThrow(`${join(empty, 'swagger-ui-bundle.js')} is unreadable (ENOENT)`);
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });
});

const suffix = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;

describe.skipIf(!hasChromium)('gateway /docs in Chromium', () => {
  let platform: Platform;
  let browser: Browser;
  let page: Page;
  let seen: PageRecord;
  let user: SignedInUser;
  let uploaded: { id: string; name: string };

  beforeAll(async () => {
    // startPlatform raises the per-address limits itself, so other runs on one Redis stay out of the way.
    platform = await startPlatform();
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
    user = await platform.signIn(`docs-ui-${suffix}`);
    const name = `docs-ui-${suffix}.bin`;
    const upload = await fetch(`${platform.url}/api/files?name=${name}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${user.accessToken}`, 'content-type': 'application/octet-stream' },
      body: new TextEncoder().encode('sent before the browser opened'),
    });
    expect(upload.status).toBe(201);
    uploaded = { id: (await json(upload)).id, name };

    page = await browser.newPage();
    seen = record(page);
    await page.goto(`${platform.url}/docs`);
    // Swagger UI renders the operations once /openapi.json has loaded and parsed.
    await page.locator('.opblock').first().waitFor({ timeout: 30_000 });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await platform?.stop();
  }, 30_000);

  it('loads the page, its assets and /openapi.json from the gateway alone, with no failed request and no console error', async () => {
    await page.waitForLoadState('networkidle');
    expect(seen.failed).toEqual([]);
    expect(seen.errorResponses).toEqual([]);
    expect(seen.consoleErrors).toEqual([]);
    const paths = seen.requests.map((url) => ({ origin: new URL(url).origin, path: new URL(url).pathname }));
    expect(paths.filter((p) => p.origin !== platform.url)).toEqual([]);
    expect(paths.map((p) => p.path)).toEqual(
      expect.arrayContaining(['/docs', '/docs/assets/swagger-ui-bundle.js', '/docs/assets/swagger-ui.css', '/docs/assets/docs-init.js', '/openapi.json']),
    );
  }, 30_000);

  it('lists the jobs and files operations of the merged document', async () => {
    const listed = await page.locator('.opblock-summary-path').evaluateAll((nodes) => nodes.map((n) => n.getAttribute('data-path')));
    expect(listed).toEqual(expect.arrayContaining(['/api/jobs', '/api/jobs/{id}', '/api/files', '/api/files/{id}/content']));
    await expect(page.locator('.opblock-get .opblock-summary-path[data-path="/api/jobs"]').first().isVisible()).resolves.toBe(true);
    await expect(page.locator('.opblock-post .opblock-summary-path[data-path="/api/files"]').first().isVisible()).resolves.toBe(true);
  }, 30_000);

  it('sends GET /api/files from the page with the token entered under Authorize and shows the 200 response with the user’s file', async () => {
    await page.locator('.auth-wrapper button.authorize').click();
    const dialog = page.locator('.dialog-ux .modal-ux');
    await dialog.locator('input#auth-bearer-value').fill(user.accessToken);
    await dialog.locator('.auth-btn-wrapper button.authorize').click();
    // Once accepted, the dialog shows the scheme as authorized and offers Logout instead.
    await expect(dialog.getByText('Authorized').first().isVisible()).resolves.toBe(true);
    await dialog.locator('.auth-btn-wrapper button.btn-done').click();

    const operation = page.locator('.opblock-get', { has: page.locator('.opblock-summary-path[data-path="/api/files"]') }).first();
    await operation.locator('.opblock-summary').first().click();
    await operation.locator('button.try-out__btn').click();
    const sent = page.waitForRequest((request) => new URL(request.url()).pathname === '/api/files' && request.method() === 'GET');
    await operation.locator('button.execute').click();
    const request = await sent;
    expect(request.headers().authorization).toBe(`Bearer ${user.accessToken}`);

    const live = operation.locator('.live-responses-table .response');
    await live.first().waitFor({ timeout: 15_000 });
    expect((await live.locator('.response-col_status').first().innerText()).trim()).toBe('200');
    const shown = JSON.parse(await live.locator('.response-col_description pre').first().innerText());
    expect(shown.items.map((file: { id: string; name: string }) => ({ id: file.id, name: file.name }))).toEqual([uploaded]);
    expect(seen.failed).toEqual([]);
    expect(seen.errorResponses).toEqual([]);
    expect(seen.consoleErrors).toEqual([]);
  }, 60_000);
});
