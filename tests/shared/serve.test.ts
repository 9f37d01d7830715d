import { createServiceApp } from '@shared/app.ts';
import { parseEnv, serviceEnvSchema } from '@shared/config.ts';
import { createMemoryKv } from '@shared/kv-memory.ts';
import { createLogger } from '@shared/log.ts';
import { startService } from '@shared/serve.ts';
import { defineService } from '@shared/service.ts';
import { describe, expect, it } from 'bun:test';
import { resolve } from 'node:path';

const logger = createLogger({ level: 'silent' });
const ROOT = resolve(import.meta.dir, '../..');

describe('startService graceful stop', () => {
  it('finishes in-flight requests, then refuses new connections and stops background work', async () => {
    let loopsStopped = false;
    const definition = defineService({
      name: 'slow-service',
      version: '0.0.1',
      port: 0,
      schema: null,
      envSchema: serviceEnvSchema(0),
      build: () => {
        const app = createServiceApp({ name: 'slow-service', version: '0.0.1', description: 'test', logger });
        app.get('/slow', async (c) => {
          await Bun.sleep(400);
          return c.text('done');
        });
        return {
          app,
          stop: async () => {
            loopsStopped = true;
          },
        };
      },
    });
    const env = parseEnv(definition.envSchema, { HOST: '127.0.0.1', PORT: '0' });
    const running = await startService(definition, { env, kv: createMemoryKv(), logger });
    const inFlight = fetch(`${running.url}/slow`);
    await Bun.sleep(50);
    const stopped = running.stop(5000);
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('done');
    await stopped;
    expect(loopsStopped).toBe(true);
    await expect(fetch(`${running.url}/health`)).rejects.toThrow();
  });
});

describe('runService as a process', () => {
  it('serves, then exits 0 on SIGTERM', async () => {
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const proc = Bun.spawn([process.execPath, 'services/api-gateway/src/index.ts'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn' },
      stdout: 'pipe',
      stderr: 'pipe',
    });
    try {
      let ready = false;
      for (let i = 0; i < 200 && !ready; i++) {
        ready = await fetch(`http://127.0.0.1:${port}/ready`).then((r) => r.ok, () => false);
        if (!ready) await Bun.sleep(25);
      }
      expect(ready).toBe(true);
      proc.kill('SIGTERM');
      expect(await proc.exited).toBe(0);
    } finally {
      proc.kill('SIGKILL');
    }
  });

  it('refuses to start with one clear line per bad variable', async () => {
    const proc = Bun.spawn([process.execPath, 'services/api-gateway/src/index.ts'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', PORT: 'eighty', USER_SERVICE_URL: 'ftp://x' },
      stdout: 'pipe',
      stderr: 'pipe',
    });
    expect(await proc.exited).toBe(2);
    const stderr = await new Response(proc.stderr).text();
    expect(stderr).toContain('PORT:');
    expect(stderr).toContain('USER_SERVICE_URL:');
    expect(stderr).not.toContain('    at ');
  });
});
