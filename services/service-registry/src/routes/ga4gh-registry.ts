/**
 * GA4GH Service Registry 1.0 over the catalogue: every catalogued imputation server and every
 * platform service as an ExternalService. Errors are the kit's problem+json, which carries the
 * registry's required `status`, `title` and `detail`.
 */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppEnv } from '@shared/app.ts';
import { HttpProblem } from '@shared/errors.ts';
import { jsonContent } from '@shared/openapi.ts';
import { problemResponses } from '@shared/schemas/problem.ts';
import { ServiceInfoSchema, ServiceTypeSchema } from '@shared/schemas/service-info.ts';
import type { CatalogueSnapshot } from '../domain.ts';
import {
  catalogueEntry,
  ExternalServiceSchema,
  platformEntries,
  registryServiceInfo,
  serviceTypes,
  type ExternalService,
  type Organization,
  type PlatformService,
} from '../ga4gh-views.ts';

export interface Ga4ghRegistryDeps {
  /** The current catalogue (the cached snapshot). */
  snapshot: () => Promise<CatalogueSnapshot>;
  /** The platform's own services and their base URLs. */
  platform: PlatformService[];
  organization: Organization;
  version: string;
}

const BASE = '/ga4gh/registry/v1';
const tags = ['GA4GH'];
const security = [{ bearerAuth: [] }];

const listServices = createRoute({
  method: 'get',
  path: `${BASE}/services`,
  tags,
  security,
  summary: 'GA4GH registry: every catalogued imputation server and every platform service',
  responses: { 200: { description: 'All services.', ...jsonContent(z.array(ExternalServiceSchema)) }, ...problemResponses(401) },
});

const listTypes = createRoute({
  method: 'get',
  path: `${BASE}/services/types`,
  tags,
  security,
  summary: 'GA4GH registry: the distinct service types in the registry',
  responses: { 200: { description: 'Distinct types.', ...jsonContent(z.array(ServiceTypeSchema)) }, ...problemResponses(401) },
});

const getService = createRoute({
  method: 'get',
  path: `${BASE}/services/{serviceId}`,
  tags,
  security,
  summary: 'GA4GH registry: one service by its id',
  request: {
    params: z.object({
      serviceId: z
        .string()
        .min(1)
        .max(300)
        .openapi({ param: { name: 'serviceId', in: 'path' }, example: 'org.federated-imputation.catalogue.michigan' }),
    }),
  },
  responses: { 200: { description: 'The service.', ...jsonContent(ExternalServiceSchema) }, ...problemResponses(400, 401, 404) },
});

const registryInfo = createRoute({
  method: 'get',
  path: `${BASE}/service-info`,
  tags,
  security,
  summary: 'GA4GH registry: service-info of this registry (type org.ga4gh:service-registry:1.0.0)',
  responses: { 200: { description: 'This registry.', ...jsonContent(ServiceInfoSchema) }, ...problemResponses(401) },
});

/** The GA4GH Service Registry routes; needs a signed-in caller like every non-public route. */
export function ga4ghRegistryRoutes(deps: Ga4ghRegistryDeps): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>();
  const platform = platformEntries(deps.platform, deps.organization);
  const info = registryServiceInfo(deps.organization, deps.version);

  // Catalogue servers are sorted by id so the listing is stable whatever order the snapshot holds.
  const entries = async (): Promise<ExternalService[]> => {
    const snapshot = await deps.snapshot();
    const catalogue = snapshot.services
      .filter((service) => service.retiredAt === null)
      .map((service) => catalogueEntry(service, deps.organization))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return [...platform, ...catalogue];
  };

  app.openapi(listServices, async (c) => c.json(await entries(), 200));

  // Before /services/{serviceId}, or "types" would be taken for a service id.
  app.openapi(listTypes, async (c) => c.json(serviceTypes(await entries()), 200));

  app.openapi(getService, async (c) => {
    const { serviceId } = c.req.valid('param');
    const entry = (await entries()).find((e) => e.id === serviceId);
    if (!entry) throw new HttpProblem(404, 'service_not_found', `No service with id ${serviceId} in this registry.`);
    return c.json(entry, 200);
  });

  app.openapi(registryInfo, (c) => c.json(info, 200));

  return app;
}
