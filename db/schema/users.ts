/** user-service tables: accounts, refresh and API tokens, signing keys, audit log, credential vault, outbox. */
import { sql } from 'drizzle-orm';
import { boolean, index, jsonb, pgSchema, text, timestamp, unique, uuid } from 'drizzle-orm/pg-core';
import { outboxTable } from './outbox.ts';

export const usersSchema = pgSchema('users');

/** Events user-service announces (credential.expiring), relayed to notification. */
export const outbox = outboxTable(usersSchema);

export const accounts = usersSchema.table('accounts', {
  id: uuid('id').primaryKey(),
  username: text('username').notNull().unique(),
  email: text('email').notNull().unique(),
  passwordHash: text('password_hash').notNull(),
  firstName: text('first_name').notNull(),
  lastName: text('last_name').notNull(),
  institution: text('institution'),
  roles: text('roles')
    .array()
    .notNull()
    .default(sql`ARRAY['researcher']::text[]`),
  isActive: boolean('is_active').notNull().default(true),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  lastLoginAt: timestamp('last_login_at', { withTimezone: true }),
});

/** Refresh tokens: opaque, stored as SHA-256, rotated on every use; a family is one login's chain. */
export const refreshTokens = usersSchema.table(
  'refresh_tokens',
  {
    id: uuid('id').primaryKey(),
    familyId: uuid('family_id').notNull(),
    userId: uuid('user_id')
      .notNull()
      .references(() => accounts.id),
    tokenHash: text('token_hash').notNull().unique(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
    /** Set when this token was exchanged for its successor; presenting it again is reuse. */
    usedAt: timestamp('used_at', { withTimezone: true }),
    revokedAt: timestamp('revoked_at', { withTimezone: true }),
    userAgent: text('user_agent'),
    ip: text('ip'),
  },
  (t) => [index('refresh_tokens_family').on(t.familyId), index('refresh_tokens_user').on(t.userId)],
);

/** Personal API tokens (`fip_…`) for scripts: shown once, stored as SHA-256. */
export const apiTokens = usersSchema.table(
  'api_tokens',
  {
    id: uuid('id').primaryKey(),
    userId: uuid('user_id')
      .notNull()
      .references(() => accounts.id),
    name: text('name').notNull(),
    tokenHash: text('token_hash').notNull().unique(),
    /** The first characters of the token, to recognise it in a list. */
    prefix: text('prefix').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    expiresAt: timestamp('expires_at', { withTimezone: true }),
    lastUsedAt: timestamp('last_used_at', { withTimezone: true }),
    revokedAt: timestamp('revoked_at', { withTimezone: true }),
  },
  (t) => [index('api_tokens_user').on(t.userId)],
);

/** JWT signing keys: the current one signs, retired ones stay published until their tokens expire. */
export const signingKeys = usersSchema.table('signing_keys', {
  kid: text('kid').primaryKey(),
  alg: text('alg').notNull(),
  publicJwk: jsonb('public_jwk').notNull(),
  /** The private JWK, sealed with the platform encryption key (see shared/secret-box.ts). */
  privateJwkSealed: text('private_jwk_sealed').notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  retiredAt: timestamp('retired_at', { withTimezone: true }),
});

/** Who did what to whom, from where. */
export const auditLog = usersSchema.table(
  'audit_log',
  {
    id: uuid('id').primaryKey(),
    at: timestamp('at', { withTimezone: true }).notNull().defaultNow(),
    action: text('action').notNull(),
    actorId: uuid('actor_id'),
    subjectType: text('subject_type'),
    subjectId: text('subject_id'),
    ip: text('ip'),
    userAgent: text('user_agent'),
    requestId: text('request_id'),
    details: jsonb('details'),
  },
  (t) => [index('audit_log_at').on(t.at), index('audit_log_actor').on(t.actorId)],
);

/**
 * The vault: each user's credential for an external imputation server, sealed with AES-256-GCM
 * (the key id is inside the sealed value, so keys can rotate). Only metadata ever leaves the service,
 * except to job-processor through the audited internal release.
 */
export const credentials = usersSchema.table(
  'credentials',
  {
    id: uuid('id').primaryKey(),
    userId: uuid('user_id')
      .notNull()
      .references(() => accounts.id),
    /** The registry's id of the external service. */
    serviceId: text('service_id').notNull(),
    /** cloudgene-token | wes-bearer | basic */
    type: text('type').notNull(),
    label: text('label'),
    sealed: text('sealed').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
    lastUsedAt: timestamp('last_used_at', { withTimezone: true }),
    /** Decoded from the token when it is a JWT (Cloudgene tokens last 30 days). */
    expiresAt: timestamp('expires_at', { withTimezone: true }),
    verifiedAt: timestamp('verified_at', { withTimezone: true }),
    verificationOk: boolean('verification_ok'),
    verificationMessage: text('verification_message'),
    /**
     * The `expires_at` a credential.expiring event was last emitted for. Keyed by the expiry rather
     * than a flag so a renewed token (new expiry) is announced again when it in turn nears its end.
     */
    expiryNotifiedFor: timestamp('expiry_notified_for', { withTimezone: true }),
  },
  (t) => [unique('credentials_user_service').on(t.userId, t.serviceId)],
);
