/**
 * Loads the initial catalogue from a data file on a first start (no service rows at all). Replicas
 * starting together may both try: the load is one transaction, and the loser's unique-slug violation
 * means the other one already did it.
 */
import { services } from '@db/schema/registry.ts';
import { isUniqueViolation } from '@shared/db.ts';
import type { Db } from '@shared/db.ts';
import type { Logger } from '@shared/log.ts';
import { CatalogueFileSchema } from './catalogue-inputs.ts';
import { insertService, type Catalogue } from './catalogue-store.ts';

/** Parses a catalogue file; throws with every problem listed when it does not validate. */
export async function readCatalogueFile(path: string) {
  const parsed = CatalogueFileSchema.safeParse(await Bun.file(path).json());
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new Error(`catalogue file ${path} is invalid:\n${lines.join('\n')}`);
  }
  return parsed.data;
}

/** Loads `path` when the catalogue is empty; resolves to how many services were loaded (0 when it was not empty). */
export async function seedCatalogue(deps: { db: Db; catalogue: Catalogue; logger: Logger }, path: string): Promise<number> {
  const [existing] = await deps.db.select({ id: services.id }).from(services).limit(1);
  if (existing) return 0;
  const file = await readCatalogueFile(path);
  try {
    await deps.db.transaction(async (tx) => {
      const [again] = await tx.select({ id: services.id }).from(services).limit(1);
      if (again) return;
      const at = new Date();
      for (const service of file.services) await insertService(tx, service, at);
    });
  } catch (err) {
    if (isUniqueViolation(err)) return 0;
    throw err;
  }
  await deps.catalogue.invalidate();
  deps.logger.info('initial catalogue loaded', { path, services: file.services.length });
  return file.services.length;
}
