import { z } from '@hono/zod-openapi';
import { ConfigError, parseEnv, serviceEnvSchema } from '@shared/config.ts';
import { describe, expect, it } from 'bun:test';

const schema = serviceEnvSchema(8001).extend({ UPSTREAM_TIMEOUT_MS: z.coerce.number().int().min(100).default(30_000) });

describe('parseEnv', () => {
  it('fills defaults for an empty environment', () => {
    const env = parseEnv(schema, {});
    expect(env.PORT).toBe(8001);
    expect(env.LOG_LEVEL).toBe('info');
    expect(env.DATABASE_URL).toBeUndefined();
    expect(env.UPSTREAM_TIMEOUT_MS).toBe(30_000);
  });

  it('treats empty strings as unset', () => {
    expect(parseEnv(schema, { PORT: '', DATABASE_URL: '' }).PORT).toBe(8001);
  });

  it('coerces numbers and accepts valid URLs', () => {
    const env = parseEnv(schema, { PORT: '9001', DATABASE_URL: 'postgres://u:p@db:5432/x', REDIS_URL: 'redis://r:6379' });
    expect(env.PORT).toBe(9001);
    expect(env.DATABASE_URL).toBe('postgres://u:p@db:5432/x');
  });

  it('fails with one line per bad key, hiding passwords', () => {
    let error: unknown;
    try {
      parseEnv(schema, { PORT: 'eighty', LOG_LEVEL: 'loud', DATABASE_URL: 'mysql://root:hunter2@db/x', UPSTREAM_TIMEOUT_MS: '5' });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const lines = (error as ConfigError).lines;
    expect(lines).toHaveLength(4);
    expect(lines.map((l) => l.split(':')[0]).sort()).toEqual(['DATABASE_URL', 'LOG_LEVEL', 'PORT', 'UPSTREAM_TIMEOUT_MS']);
    expect((error as Error).message).not.toContain('hunter2');
  });
});
