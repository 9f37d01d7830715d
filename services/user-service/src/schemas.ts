/** Request and response bodies of user-service's public API. */
import { z } from '@hono/zod-openapi';
import { CREDENTIAL_TYPES } from '@shared/schemas/credentials.ts';

const username = z
  .string()
  .regex(/^[A-Za-z0-9._-]{3,40}$/, '3–40 letters, digits, dots, dashes or underscores')
  .openapi({ example: 'ada' });
const email = z.email().max(254).openapi({ example: 'ada@example.org' });
const name = z.string().trim().min(1).max(100);
const password = z.string().min(1).max(1024).openapi({ format: 'password' });

export const RegisterBody = z
  .object({
    username,
    email,
    password,
    firstName: name.openapi({ example: 'Ada' }),
    lastName: name.openapi({ example: 'Lovelace' }),
    institution: z.string().trim().max(200).nullish(),
  })
  .openapi('RegisterRequest');

export const LoginBody = z
  .object({
    login: z.string().min(1).max(254).openapi({ description: 'Username or email', example: 'ada' }),
    password,
  })
  .openapi('LoginRequest');

export const RefreshBody = z.object({ refreshToken: z.string().min(1).max(200) }).openapi('RefreshRequest');

export const UserSchema = z
  .object({
    id: z.string(),
    username: z.string(),
    email: z.string(),
    firstName: z.string(),
    lastName: z.string(),
    institution: z.string().nullable(),
    roles: z.array(z.string()),
    isActive: z.boolean(),
    createdAt: z.string(),
    lastLoginAt: z.string().nullable(),
  })
  .openapi('User');

export const SessionSchema = z
  .object({
    accessToken: z.string(),
    refreshToken: z.string(),
    tokenType: z.literal('Bearer'),
    expiresIn: z.number().int().openapi({ description: 'Seconds until the access token expires' }),
    user: UserSchema,
  })
  .openapi('Session');

export const ProfilePatch = z
  .object({
    firstName: name.optional(),
    lastName: name.optional(),
    institution: z.string().trim().max(200).nullable().optional(),
    email: email.optional(),
  })
  .strict()
  .openapi('ProfileUpdate');

export const PasswordChangeBody = z.object({ currentPassword: password, newPassword: password }).openapi('PasswordChange');

export const ApiTokenCreateBody = z
  .object({
    name: z.string().trim().min(1).max(100).openapi({ example: 'cluster pipeline' }),
    expiresInDays: z.number().int().min(1).max(365).nullish().openapi({ description: 'Omit or null for no expiry' }),
  })
  .openapi('ApiTokenCreate');

export const ApiTokenSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    prefix: z.string().openapi({ description: 'The first characters, to recognise the token' }),
    createdAt: z.string(),
    expiresAt: z.string().nullable(),
    lastUsedAt: z.string().nullable(),
  })
  .openapi('ApiToken');

export const NewApiTokenSchema = ApiTokenSchema.extend({
  token: z.string().openapi({ description: 'Shown once; store it now' }),
}).openapi('NewApiToken');

export const JwksSchema = z.object({ keys: z.array(z.record(z.string(), z.unknown())) }).openapi('JWKS');

export const IdParam = z.object({ id: z.uuid() });

export const ServiceIdParam = z.object({
  serviceId: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,100}$/, "the registry's service id")
    .openapi({ param: { name: 'serviceId', in: 'path' }, example: 'michigan-imputation-server' }),
});

export const CredentialPutBody = z
  .discriminatedUnion('type', [
    z.object({
      type: z.literal('cloudgene-token'),
      token: z.string().min(8).max(8192).openapi({ description: 'API token from the server profile page; sent as X-Auth-Token' }),
      label: z.string().trim().max(100).nullish(),
    }),
    z.object({
      type: z.literal('wes-bearer'),
      token: z.string().min(8).max(8192).openapi({ description: 'Bearer token for the GA4GH WES endpoint' }),
      label: z.string().trim().max(100).nullish(),
    }),
    z.object({
      type: z.literal('basic'),
      username: z.string().min(1).max(256),
      password: z.string().min(1).max(1024),
      label: z.string().trim().max(100).nullish(),
    }),
  ])
  .openapi('CredentialWrite');

export const CredentialSchema = z
  .object({
    serviceId: z.string(),
    type: z.enum(CREDENTIAL_TYPES),
    label: z.string().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
    lastUsedAt: z.string().nullable(),
    expiresAt: z.string().nullable().openapi({ description: "The token's own expiry when it is a JWT" }),
    expiringSoon: z.boolean(),
    expired: z.boolean(),
    lastVerification: z.object({ at: z.string(), ok: z.boolean(), message: z.string().nullable() }).nullable(),
  })
  .openapi('Credential');

export const AdminUserPatch = z
  .object({
    roles: z
      .array(z.enum(['admin', 'researcher', 'viewer']))
      .min(1)
      .max(3)
      .refine((r) => new Set(r).size === r.length, 'roles must not repeat')
      .optional(),
    isActive: z.boolean().optional(),
  })
  .strict()
  .refine((b) => b.roles !== undefined || b.isActive !== undefined, 'give roles or isActive')
  .openapi('AdminUserUpdate');

export const AuditEntrySchema = z
  .object({
    id: z.string(),
    at: z.string(),
    action: z.string(),
    actorId: z.string().nullable(),
    subjectType: z.string().nullable(),
    subjectId: z.string().nullable(),
    ip: z.string().nullable(),
    userAgent: z.string().nullable(),
    requestId: z.string().nullable(),
    details: z.record(z.string(), z.unknown()).nullable(),
  })
  .openapi('AuditEntry');
