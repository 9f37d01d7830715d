/**
 * The platform's release version. The seven services are built and released together from this
 * repository, so they share one version: every `/service-info`, OpenAPI document and the registry's
 * GA4GH listing of the platform's own services report it.
 */
export const PLATFORM_VERSION = '0.2.0';
