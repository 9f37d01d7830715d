/**
 * The interactive API reference at `/docs`: Swagger UI (the `swagger-ui-dist` package's prebuilt
 * bundle) over the merged `/openapi.json`, every byte served by the gateway itself so the page works
 * offline and under the docs CSP (`script-src 'self'`: no inline script, no CDN, no eval).
 *
 * Swagger UI rather than Scalar: its dist bundle is plain static files that make no request of their
 * own once the validator badge is off, while Scalar's standalone bundle loads its fonts from
 * fonts.scalar.com unless told not to and is twice the size. The vendor files are read once at start
 * (from node_modules in a source run, from the directory the image copies them to in a container).
 */
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { ServiceApp } from '@shared/app.ts';

/** The files of swagger-ui-dist the page loads; the runtime image copies exactly these. */
export const DOCS_VENDOR_FILES = ['swagger-ui-bundle.js', 'swagger-ui.css', 'favicon-32x32.png'] as const;

/** Where the page's own files live under the gateway. */
export const DOCS_ASSETS_PATH = '/docs/assets';

/**
 * Starts Swagger UI on the merged document. A file of its own because the CSP forbids inline script.
 * `validatorUrl: null` stops the badge that asks validator.swagger.io; the `?url=`/`?configUrl=`
 * query parameters stay ignored (Swagger UI's default), so a link cannot point the page elsewhere; the
 * token entered under Authorize lives in this tab's memory only (`persistAuthorization: false`).
 */
const INIT_SCRIPT = `'use strict';
window.ui = SwaggerUIBundle({
  url: '/openapi.json',
  dom_id: '#swagger-ui',
  layout: 'BaseLayout',
  presets: [SwaggerUIBundle.presets.apis],
  deepLinking: true,
  validatorUrl: null,
  persistAuthorization: false,
  displayRequestDuration: true,
  docExpansion: 'list',
  defaultModelsExpandDepth: 0,
});
`;

const CONTENT_TYPES: Record<string, string> = {
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  png: 'image/png',
};

export interface DocsAsset {
  body: Uint8Array<ArrayBuffer>;
  contentType: string;
  /** Strong ETag from the content, so an upgraded bundle is never answered with 304. */
  etag: string;
}

/** The loaded reference: its page and the assets under `/docs/assets/`. */
export interface DocsUi {
  page: string;
  assets: ReadonlyMap<string, DocsAsset>;
}

function asset(name: string, body: Uint8Array<ArrayBuffer>): DocsAsset {
  const extension = name.slice(name.lastIndexOf('.') + 1);
  const contentType = CONTENT_TYPES[extension];
  if (!contentType) throw new Error(`no content type for docs asset ${name}`);
  const hash = new Bun.CryptoHasher('sha256').update(body).digest('base64url').slice(0, 22);
  return { body, contentType, etag: `"${hash}"` };
}

/** swagger-ui-dist's folder in node_modules, for runs from source (containers set DOCS_ASSETS_DIR). */
export function defaultDocsAssetsDir(fromDir: string): string {
  return dirname(Bun.resolveSync('swagger-ui-dist/package.json', fromDir));
}

/**
 * Reads the vendor files from `dir` and builds the page; rejects naming the first missing file, so a
 * gateway without its docs assets fails at start rather than serving a blank page.
 */
export async function loadDocsUi(dir: string): Promise<DocsUi> {
  const assets = new Map<string, DocsAsset>();
  for (const name of DOCS_VENDOR_FILES) {
    let body: Uint8Array<ArrayBuffer>;
    try {
      body = new Uint8Array(await readFile(join(dir, name)));
    } catch (err) {
      throw new Error(`docs UI asset ${join(dir, name)} is unreadable (${(err as NodeJS.ErrnoException).code ?? err}): set DOCS_ASSETS_DIR to a folder holding swagger-ui-dist's ${DOCS_VENDOR_FILES.join(', ')}`);
    }
    assets.set(name, asset(name, body));
  }
  assets.set('docs-init.js', asset('docs-init.js', new TextEncoder().encode(INIT_SCRIPT)));
  // Each URL carries its asset's hash, so a browser holding an older bundle fetches the new one.
  const url = (name: string) => `${DOCS_ASSETS_PATH}/${name}?v=${assets.get(name)!.etag.slice(1, 9)}`;
  const page = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Federated Imputation Platform API</title>
<link rel="icon" type="image/png" href="${url('favicon-32x32.png')}">
<link rel="stylesheet" href="${url('swagger-ui.css')}">
</head>
<body>
<noscript>The API reference needs JavaScript; the document itself is at <a href="/openapi.json">/openapi.json</a>.</noscript>
<div id="swagger-ui"></div>
<script src="${url('swagger-ui-bundle.js')}"></script>
<script src="${url('docs-init.js')}"></script>
</body>
</html>
`;
  return { page, assets };
}

/**
 * Adds `GET /docs` (the page, revalidated on every load) and `GET /docs/assets/:name` (cached for a
 * day, revalidated by ETag) to the gateway app. Unknown asset names get the kit's 404 problem.
 */
export function mountDocsUi(app: ServiceApp, ui: DocsUi): void {
  const pageHeaders = { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-cache' };
  app.get('/docs', (c) => c.body(ui.page, 200, pageHeaders));
  app.get('/docs/', (c) => c.body(ui.page, 200, pageHeaders));
  app.get(`${DOCS_ASSETS_PATH}/:name`, (c) => {
    const found = ui.assets.get(c.req.param('name'));
    if (!found) return c.notFound();
    const headers = { etag: found.etag, 'cache-control': 'public, max-age=86400' };
    if (c.req.header('if-none-match') === found.etag) return c.body(null, 304, headers);
    return c.body(found.body, 200, { ...headers, 'content-type': found.contentType });
  });
}
