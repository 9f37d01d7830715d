/**
 * Accounts: registration with the password policy, argon2id password checks, profiles, password
 * changes, and the first admin from configuration.
 */
import type { Db } from '@shared/db.ts';
import { isUniqueViolation } from '@shared/db.ts';
import { HttpProblem } from '@shared/errors.ts';
import { accounts } from '@db/schema/users.ts';
import { eq, or, sql } from 'drizzle-orm';
import { checkPassword } from './password-policy.ts';

export type AccountRow = typeof accounts.$inferSelect;

export interface AccountView {
  id: string;
  username: string;
  email: string;
  firstName: string;
  lastName: string;
  institution: string | null;
  roles: string[];
  isActive: boolean;
  createdAt: string;
  lastLoginAt: string | null;
}

export function accountView(row: AccountRow): AccountView {
  return {
    id: row.id,
    username: row.username,
    email: row.email,
    firstName: row.firstName,
    lastName: row.lastName,
    institution: row.institution,
    roles: row.roles,
    isActive: row.isActive,
    createdAt: row.createdAt.toISOString(),
    lastLoginAt: row.lastLoginAt?.toISOString() ?? null,
  };
}

export interface Registration {
  username: string;
  email: string;
  password: string;
  firstName: string;
  lastName: string;
  institution?: string | null;
}

/** OWASP's argon2id baseline (19 MiB, 2 passes): ~20–40 ms per hash here. */
const HASH_OPTIONS = { algorithm: 'argon2id', memoryCost: 19_456, timeCost: 2 } as const;

export interface Accounts {
  register(input: Registration, roles?: string[], db?: Db): Promise<AccountRow>;
  /** The account a username or email names, if any. */
  findByLogin(login: string): Promise<AccountRow | null>;
  /** Whether `password` is the account's; costs the same when there is no account. */
  passwordMatches(row: AccountRow | null, password: string): Promise<boolean>;
  recordLogin(id: string): Promise<void>;
  get(id: string): Promise<AccountRow | null>;
  updateProfile(id: string, changes: Partial<Pick<Registration, 'firstName' | 'lastName' | 'institution' | 'email'>>): Promise<AccountRow>;
  /**
   * Sets a new password after checking the current one; `alongside` runs in the same transaction
   * (revoking the other sessions), so a crash cannot leave the new password with old sessions alive.
   */
  changePassword(id: string, current: string, next: string, alongside?: (tx: Db) => Promise<void>): Promise<void>;
  /** Creates the configured admin when no active admin exists; returns it when created. */
  ensureAdmin(admin: Registration): Promise<AccountRow | null>;
}

export function createAccounts(deps: { db: Db; now?: () => number }): Accounts {
  const now = deps.now ?? Date.now;
  // Verified against when the login names nobody, so unknown users cost as much as wrong passwords.
  const dummyHash = Bun.password.hash('not-a-real-password-0000', HASH_OPTIONS);

  function enforcePolicy(password: string, username: string, email: string) {
    const problems = checkPassword(password, { username, email });
    if (problems.length > 0) {
      throw new HttpProblem(422, 'weak_password', problems[0]!.message, {
        errors: problems.map((p) => ({ path: 'body.password', message: p.message, code: p.code })),
      });
    }
  }

  const accounts_: Accounts = {
    async register(input, roles = ['researcher'], db = deps.db) {
      const username = input.username.toLowerCase();
      const email = input.email.toLowerCase();
      enforcePolicy(input.password, username, email);
      const passwordHash = await Bun.password.hash(input.password, HASH_OPTIONS);
      try {
        const [row] = await db
          .insert(accounts)
          .values({
            id: Bun.randomUUIDv7(),
            username,
            email,
            passwordHash,
            firstName: input.firstName,
            lastName: input.lastName,
            institution: input.institution ?? null,
            roles,
            createdAt: new Date(now()),
            updatedAt: new Date(now()),
          })
          .returning();
        return row!;
      } catch (err) {
        if (!isUniqueViolation(err)) throw err;
        const [taken] = await deps.db
          .select({ username: accounts.username })
          .from(accounts)
          .where(or(eq(accounts.username, username), eq(accounts.email, email)));
        const field = taken?.username === username ? 'username' : 'email';
        throw new HttpProblem(409, `${field}_taken`, `That ${field} is already registered.`, {
          errors: [{ path: `body.${field}`, message: `already registered`, code: 'duplicate' }],
        });
      }
    },

    async findByLogin(login) {
      const key = login.toLowerCase();
      const [row] = await deps.db
        .select()
        .from(accounts)
        .where(or(eq(accounts.username, key), eq(accounts.email, key)));
      return row ?? null;
    },

    async passwordMatches(row, password) {
      const ok = await Bun.password.verify(password, row?.passwordHash ?? (await dummyHash));
      return row !== null && ok;
    },

    async recordLogin(id) {
      await deps.db.update(accounts).set({ lastLoginAt: new Date(now()) }).where(eq(accounts.id, id));
    },

    async get(id) {
      const [row] = await deps.db.select().from(accounts).where(eq(accounts.id, id));
      return row ?? null;
    },

    async updateProfile(id, changes) {
      const values: Partial<typeof accounts.$inferInsert> = { updatedAt: new Date(now()) };
      if (changes.firstName !== undefined) values.firstName = changes.firstName;
      if (changes.lastName !== undefined) values.lastName = changes.lastName;
      if (changes.institution !== undefined) values.institution = changes.institution;
      if (changes.email !== undefined) values.email = changes.email.toLowerCase();
      try {
        const [row] = await deps.db.update(accounts).set(values).where(eq(accounts.id, id)).returning();
        if (!row) throw new HttpProblem(404, 'user_not_found', 'No such user.');
        return row;
      } catch (err) {
        if (isUniqueViolation(err)) throw new HttpProblem(409, 'email_taken', 'That email is already registered.');
        throw err;
      }
    },

    async changePassword(id, current, next, alongside) {
      const row = await accounts_.get(id);
      if (!row) throw new HttpProblem(404, 'user_not_found', 'No such user.');
      if (!(await Bun.password.verify(current, row.passwordHash))) {
        throw new HttpProblem(403, 'wrong_password', 'The current password is not correct.');
      }
      enforcePolicy(next, row.username, row.email);
      const passwordHash = await Bun.password.hash(next, HASH_OPTIONS);
      await deps.db.transaction(async (tx) => {
        await tx.update(accounts).set({ passwordHash, updatedAt: new Date(now()) }).where(eq(accounts.id, id));
        await alongside?.(tx as unknown as Db);
      });
    },

    async ensureAdmin(admin) {
      const [existing] = await deps.db
        .select({ id: accounts.id })
        .from(accounts)
        .where(sql`'admin' = any(${accounts.roles}) and ${accounts.isActive}`)
        .limit(1);
      if (existing) return null;
      return deps.db.transaction(async (tx) => {
        await tx.execute(sql`select pg_advisory_xact_lock(hashtext('federated-imputation:first-admin'))`);
        const [again] = await tx
          .select({ id: accounts.id })
          .from(accounts)
          .where(sql`'admin' = any(${accounts.roles}) and ${accounts.isActive}`)
          .limit(1);
        if (again) return null;
        return accounts_.register(admin, ['admin'], tx as unknown as Db);
      });
    },
  };
  return accounts_;
}
