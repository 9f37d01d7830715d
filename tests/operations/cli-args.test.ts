/**
 * The operations commands' pure parts: which database each schema comes from, the manifest's
 * refusal of names that would leave the backup directory, and the schema list agreeing with the
 * services' own definitions.
 */
import { describe, expect, it } from 'bun:test';
import { SERVICES } from '../../services/catalog.ts';
import { parseOperationsEnv, resolveDatabaseTargets, UsageError } from '../../scripts/operations/cli-args.ts';
import { manifestSchema } from '../../scripts/operations/manifest.ts';
import { SERVICE_SCHEMAS } from '../../scripts/operations/platform-schemas.ts';
import { defaultBackupName } from '../../scripts/operations/backup-dir.ts';

const A = 'postgres://fip:secret@db:5432/fip_all';
const JOBS = 'postgres://fip:other@jobs-db:5432/fip_jobs';

describe('platform schemas', () => {
  it('lists exactly the schemas the service definitions own', () => {
    const owned = SERVICES.map((s) => s.schema).filter((s): s is string => s !== null);
    expect<string[]>([...SERVICE_SCHEMAS].sort()).toEqual([...owned].sort());
  });
});

describe('resolveDatabaseTargets', () => {
  it('uses the embedded database under DATA_DIR when no URL is given anywhere', () => {
    const env = parseOperationsEnv({ DATA_DIR: '/srv/fip' });
    expect(resolveDatabaseTargets({}, env)).toEqual({ kind: 'pglite', dataDir: '/srv/fip', pgliteDir: '/srv/fip/pglite' });
    expect(resolveDatabaseTargets({ dataDir: '/elsewhere' }, env)).toMatchObject({ kind: 'pglite', pgliteDir: '/elsewhere/pglite' });
  });

  it('gives every schema DATABASE_URL, with per-schema variables and --database flags taking precedence in that order', () => {
    const env = parseOperationsEnv({ DATABASE_URL: A, JOBS_DATABASE_URL: JOBS, FILES_DATABASE_URL: JOBS });
    const targets = resolveDatabaseTargets({ database: [`files=${A}`] }, env);
    expect(targets).toEqual({ kind: 'postgres', urls: { users: A, registry: A, jobs: JOBS, files: A, notify: A, monitor: A } });
  });

  it('prefers --database-url over DATABASE_URL', () => {
    const env = parseOperationsEnv({ DATABASE_URL: JOBS });
    const targets = resolveDatabaseTargets({ databaseUrl: A }, env);
    expect(targets.kind === 'postgres' && new Set(Object.values(targets.urls))).toEqual(new Set([A]));
  });

  it('refuses per-schema URLs that leave schemas without a database, naming them and how to give them', () => {
    const env = parseOperationsEnv({ USERS_DATABASE_URL: A });
    expect(() => resolveDatabaseTargets({}, env)).toThrow(UsageError);
    expect(() => resolveDatabaseTargets({}, env)).toThrow(/no database for registry, jobs, files, notify, monitor.*REGISTRY_DATABASE_URL/);
  });

  it('refuses an unknown schema, a repeated one and a non-postgres URL without echoing the password', () => {
    const env = parseOperationsEnv({});
    expect(() => resolveDatabaseTargets({ database: [`billing=${A}`] }, env)).toThrow(/billing=postgres:\/\/fip:\*\*\*@db/);
    expect(() => resolveDatabaseTargets({ database: [`billing=${A}`] }, env)).not.toThrow(/secret/);
    expect(() => resolveDatabaseTargets({ database: [`jobs=${A}`, `jobs=${JOBS}`] }, env)).toThrow('jobs is given twice');
    expect(() => resolveDatabaseTargets({ database: ['jobs=mysql://x'] }, env)).toThrow('must be a postgres://');
    expect(() => parseOperationsEnv({ JOBS_DATABASE_URL: 'mysql://x' })).toThrow(/JOBS_DATABASE_URL/);
  });
});

describe('manifest schema', () => {
  const minimal = {
    format: 'fip-backup',
    formatVersion: 1,
    platformVersion: '0.2.0',
    mode: 'postgres',
    createdAt: '2025-01-01T00:00:00.000Z',
    completedAt: '2025-01-01T00:00:01.000Z',
    databases: [],
    schemas: { jobs: { tables: { jobs: 1 }, migrations: null, dump: { file: 'jobs.dump', bytes: 1, sha256: 'a'.repeat(64) } } },
    files: { included: true, storageDir: '/x', count: 0, totalBytes: 0, mismatches: 0, items: [] },
    secrets: { included: false, files: [] },
  };

  it('accepts a well-formed manifest', () => {
    expect(manifestSchema.safeParse(minimal).success).toBe(true);
  });

  it('refuses dump names and storage keys that would point outside the backup directory', () => {
    const badDump = structuredClone(minimal);
    badDump.schemas.jobs.dump.file = '../../etc/passwd';
    expect(manifestSchema.safeParse(badDump).success).toBe(false);
    const item = { id: 'x', storageKey: '../../../etc', sizeBytes: 1, recordedSha256: 'a', sha256: null, bytes: null, status: 'missing' };
    const badKey = { ...minimal, files: { ...minimal.files, count: 1, items: [item] } };
    expect(manifestSchema.safeParse({ ...badKey, files: { ...badKey.files, items: [{ ...item, storageKey: '0197a0b1c2d3' }] } }).success).toBe(true);
    expect(manifestSchema.safeParse(badKey).success).toBe(false);
  });

  it('refuses a negative row count', () => {
    const bad = structuredClone(minimal);
    bad.schemas.jobs.tables.jobs = -1;
    expect(manifestSchema.safeParse(bad).success).toBe(false);
  });
});

describe('defaultBackupName', () => {
  it('is the UTC time to the second, sortable', () => {
    expect(defaultBackupName(new Date('2025-03-04T05:06:07.890Z'))).toBe('fip-backup-20250304T050607Z');
  });
});
