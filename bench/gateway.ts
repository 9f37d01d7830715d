/**
 * `bun bench/gateway.ts [--redis] [--runs 3] [--seconds 5] [--warmup 1] [--connections 1,50]
 * [--compare-entry <other checkout>/services/api-gateway/src/index.ts]` (~6 min with the defaults):
 * DESIGN.md §9 "Gateway adds ≤ 0.5 ms p50 and keeps ≥ 60% of the direct throughput of the service
 * behind it" and "Gateway /health … ≤ 10 ms p50 with all services up".
 *
 * Starts all six services and the gateway as separate processes from source on a scratch PostgreSQL
 * database (loopback only), registers and logs in through the gateway, and then measures the same
 * authenticated GET, notification's `GET /notifications/unread-count` (token verified, one count
 * query, small JSON), several ways, interleaved run by run so drift hits every target alike:
 * - direct: the load generator → notification;
 * - bare proxy: → a bare `Bun.serve` that forwards with `fetch()` → notification, the floor any
 *   second HTTP hop in Bun costs (no auth, no limits, no header work);
 * - gateway, user bucket off: the real gateway without the rate-limit round trip;
 * - gateway from `--compare-entry` (when given): another checkout's gateway, for before/after;
 * - gateway: the real gateway as it ships (edge auth, one GCRA round trip to the KV, body limits,
 *   breaker, header hygiene), with the user bucket raised so no request is refused.
 * Then the floor with nothing behind it (the same three hops in front of bench/bare-server.ts, at the
 * highest connection count), and the gateway's `GET /health` (six `/ready` probes fanned out) next
 * to each service's own `/ready`, at one connection.
 *
 * The load generator is bench/load.ts in its own process, with the token as a request header and
 * `--marks`; this file run with `--role bare-proxy` is the floor's proxy. CPU time of each server
 * process (utime + stime from /proc) is read when load.ts says the measured window opens and closes,
 * so the tables also say where the machine's two cores went per request.
 *
 * The KV is in memory per process unless `--redis` (REDIS_URL=BENCH_REDIS_URL or
 * redis://127.0.0.1:6379, shared by every process). Prints tables; asserts nothing. The scratch
 * database and directory are removed and every child process is stopped at the end, also on error.
 */
import { SERVICE_URL_VARIABLES } from '@shared/config.ts';
import { readdir } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { FixedLoadResult as LoadResult } from './load.ts';
import type { ServiceChild } from './service-child.ts';
import { CLK_TCK, cpuTicks, fixed } from './proc-stats.ts';
import { printTable } from './table.ts';

const { values: args } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    role: { type: 'string', default: 'bench' },
    redis: { type: 'boolean', default: false },
    runs: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    connections: { type: 'string', default: '1,50' },
    /** Also start a gateway from this entry (say, a worktree of the last commit) and measure it alongside. */
    'compare-entry': { type: 'string' },
  },
});

// ---------------------------------------------------------------------------------------------
// Role `bare-proxy`: the least a second hop can cost in Bun. `/api/<rest>` → UPSTREAM_URL/<rest>,
// request headers and bodies passed as they are, the upstream's response returned as it is.

function bareProxyRole(): void {
  const upstream = process.env.UPSTREAM_URL!.replace(/\/+$/, '');
  Bun.serve({
    hostname: '127.0.0.1',
    port: Number(process.env.PORT),
    fetch(request) {
      const url = request.url;
      const path = url.slice(url.indexOf('/', url.indexOf('//') + 2));
      return fetch(upstream + (path.startsWith('/api/') ? path.slice(4) : path), {
        method: request.method,
        headers: request.headers,
        body: request.body,
        redirect: 'manual',
        decompress: false,
      });
    },
  });
}

// ---------------------------------------------------------------------------------------------
// Role `bench`: everything else.

const ROOT = resolve(import.meta.dir, '..');
const BUN = process.execPath;
const ADMIN_URL = process.env.BENCH_ADMIN_URL ?? 'postgres://root@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const START_TIMEOUT_MS = 30_000;
const THROUGHPUT_BUDGET = 0.6;
const ADDED_P50_BUDGET_MS = 0.5;
const HEALTH_P50_BUDGET_MS = 10;
const SERVICE_NAMES = ['user-service', 'service-registry', 'job-processor', 'file-manager', 'notification', 'monitoring'] as const;
type ServiceName = (typeof SERVICE_NAMES)[number];
/** Ports besides the six services': gateways, proxies and the trivial upstream. */
const EXTRA_PORTS = ['api-gateway', 'gateway-unlimited', 'gateway-compared', 'bare-proxy', 'trivial-upstream', 'trivial-proxy', 'trivial-gateway'] as const;
/** Raised so the bench never sees a 429 while every request is still charged (one GCRA round trip). */
const BENCH_USER_LIMIT = '100000000/1m';

const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]! ) / 2;
};
const randomText = (bytes: number) => Buffer.from(crypto.getRandomValues(new Uint8Array(bytes))).toString('base64url');
const randomKey = (id: string) => `${id}:${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64')}`;

/** Summed CPU ticks of every PostgreSQL process (one backend per connection) and of redis-server. */
async function storeTicks(): Promise<{ postgres: number; redis: number }> {
  const total = { postgres: 0, redis: 0 };
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const comm = (await Bun.file(`/proc/${entry}/comm`).text()).trim();
      // NaN: the process ended between readdir and the read.
      if (comm === 'postgres') total.postgres += (await cpuTicks(Number(entry))) || 0;
      else if (comm === 'redis-server') total.redis += (await cpuTicks(Number(entry))) || 0;
    } catch {
      // gone meanwhile
    }
  }
  return total;
}

async function benchRole(): Promise<void> {
  // Imported here, not at the top: the bare-proxy role runs this file too and should load nothing else.
  const { openScratch } = await import('./scratch.ts');
  const { spawnServiceChild, waitReady: waitReadyWithin } = await import('./service-child.ts');
  const { freePort } = await import('../tests/support/platform-processes.ts');
  const { secretVariable } = await import('../services/user-service/src/service.ts');
  const RUNS = Number(args.runs);
  const SECONDS = Number(args.seconds);
  const WARMUP = Number(args.warmup);
  const CONNECTIONS = args.connections.split(',').map(Number);

  const scratch = await openScratch({ name: 'gateway', adminUrl: ADMIN_URL });
  const children: ServiceChild[] = [];
  const spawn = (name: string, command: string[], env: Record<string, string>) => {
    const child = spawnServiceChild(scratch, name, command, env);
    children.push(child);
    return child;
  };
  const waitReady = (child: ServiceChild, url: string) => waitReadyWithin(child, url, START_TIMEOUT_MS);

  async function runLoad(url: string, connections: number, headers: string[], watched: number[]): Promise<LoadResult & { cpuUs: number[]; postgresUs: number; redisUs: number }> {
    const command = [BUN, join(ROOT, 'bench/load.ts'), '--marks', '--url', url, '--connections', String(connections), '--seconds', String(SECONDS), '--warmup', String(WARMUP)];
    for (const header of headers) command.push('--header', header);
    const child = scratch.track(Bun.spawn(command, { stdout: 'pipe', stderr: 'pipe' }));
    const stderr = new Response(child.stderr).text();
    const sample = async () => ({ processes: await Promise.all(watched.map(cpuTicks)), stores: await storeTicks() });
    let start: Awaited<ReturnType<typeof sample>> | undefined;
    let end: Awaited<ReturnType<typeof sample>> | undefined;
    let result: LoadResult | undefined;
    const decoder = new TextDecoder();
    let pending = '';
    for await (const chunk of child.stdout) {
      pending += decoder.decode(chunk, { stream: true });
      let newline: number;
      while ((newline = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        if (line === 'window-start') start = await sample();
        else if (line === 'window-end') end = await sample();
        else if (line.startsWith('{')) result = JSON.parse(line) as LoadResult;
      }
    }
    const code = await child.exited;
    if (code !== 0 || !result || !start || !end) throw new Error(`load generator exited with ${code}: ${(await stderr).trim()}`);
    const perRequestUs = (ticks: number) => (ticks * 1e6) / CLK_TCK / Math.max(1, result!.requests);
    return {
      ...result,
      cpuUs: watched.map((_, i) => perRequestUs(end!.processes[i]! - start!.processes[i]!)),
      postgresUs: perRequestUs(end.stores.postgres - start.stores.postgres),
      redisUs: perRequestUs(end.stores.redis - start.stores.redis),
    };
  }

  try {
    await scratch.createDatabase();
    const ports = Object.fromEntries(
      [...SERVICE_NAMES, ...EXTRA_PORTS].map((n) => [n, freePort()]),
    ) as Record<ServiceName | (typeof EXTRA_PORTS)[number], number>;
    const base = (name: keyof typeof ports) => `http://127.0.0.1:${ports[name]}`;
    const secrets = Object.fromEntries([...SERVICE_NAMES, 'api-gateway'].map((n) => [n, randomText(24)]));
    const common: Record<string, string> = {
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      DATABASE_URL: scratch.databaseUrl,
      MIGRATIONS_DIR: join(ROOT, 'db/migrations'),
      DATA_DIR: join(scratch.dir, 'data'),
      ...Object.fromEntries(Object.entries(SERVICE_URL_VARIABLES).map(([name, variable]) => [variable, base(name as keyof typeof ports)])),
      ...(args.redis ? { REDIS_URL } : {}),
    };
    const serviceEntry = (name: string) => [join(ROOT, 'services', name, 'src', 'index.ts')];
    const serviceEnv = (name: string, port: number, extra: Record<string, string> = {}) => ({
      ...common,
      PORT: String(port),
      SERVICE_SECRET: secrets[name]!,
      ...extra,
    });

    // user-service first: the others fetch its JWKS and service tokens. One at a time after it, so
    // no two apply migrations at once.
    const userService = spawn('user-service', serviceEntry('user-service'), {
      ...serviceEnv('user-service', ports['user-service'], {
        ENCRYPTION_KEYS: randomKey('b'),
        REGISTRATIONS_PER_HOUR_PER_IP: '1000',
      }),
      ...Object.fromEntries([...SERVICE_NAMES, 'api-gateway'].filter((n) => n !== 'user-service').map((n) => [secretVariable(n), secrets[n]!])),
    });
    await waitReady(userService, `${base('user-service')}/ready`);
    const started: Partial<Record<ServiceName, ServiceChild>> = { 'user-service': userService };
    for (const name of SERVICE_NAMES.filter((n) => n !== 'user-service')) {
      const extra: Record<string, string> =
        name === 'file-manager'
          ? { STORAGE_DIR: join(scratch.dir, 'files'), LINK_SIGNING_KEY: randomKey('l') }
          : name === 'job-processor' || name === 'notification'
            ? { ENCRYPTION_KEYS: randomKey('e') }
            : {};
      started[name] = spawn(name, serviceEntry(name), serviceEnv(name, ports[name], extra));
      await waitReady(started[name]!, `${base(name)}/ready`);
    }
    const gatewayEnv = (port: number, userLimit: string) => serviceEnv('api-gateway', port, { RATE_LIMIT_USER: userLimit });
    const gateway = spawn('api-gateway', serviceEntry('api-gateway'), gatewayEnv(ports['api-gateway'], BENCH_USER_LIMIT));
    const unlimited = spawn('api-gateway (user bucket off)', serviceEntry('api-gateway'), gatewayEnv(ports['gateway-unlimited'], 'off'));
    const compareEntry = args['compare-entry'] ? resolve(args['compare-entry']) : undefined;
    const compared = compareEntry ? spawn(`api-gateway from ${compareEntry}`, [compareEntry], gatewayEnv(ports['gateway-compared'], BENCH_USER_LIMIT)) : undefined;
    const bareProxy = spawn('bare proxy', [import.meta.path, '--role', 'bare-proxy'], { PORT: String(ports['bare-proxy']), UPSTREAM_URL: base('notification') });
    await Promise.all([
      waitReady(gateway, `${base('api-gateway')}/ready`),
      waitReady(unlimited, `${base('gateway-unlimited')}/ready`),
      compared ? waitReady(compared, `${base('gateway-compared')}/ready`) : undefined,
      // The bare proxy forwards /ready to the upstream's.
      waitReady(bareProxy, `${base('bare-proxy')}/ready`),
    ]);

    // A real account, through the gateway as a client would.
    const api = `${base('api-gateway')}/api`;
    const username = `bench${randomText(6).replace(/[^A-Za-z0-9]/g, 'x').toLowerCase()}`;
    const password = `Gateway-Bench-${randomText(12)}`;
    const post = async (path: string, body: unknown, expect: number) => {
      const res = await fetch(api + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const text = await res.text();
      if (res.status !== expect) throw new Error(`${path}: expected ${expect}, got ${res.status}: ${text.slice(0, 300)}`);
      return JSON.parse(text) as Record<string, unknown>;
    };
    await post('/auth/register', { username, email: `${username}@example.org`, password, firstName: 'Bench', lastName: 'Gateway' }, 201);
    const { accessToken } = (await post('/auth/login', { login: username, password }, 200)) as { accessToken: string };
    const auth = [`Authorization: Bearer ${accessToken}`];

    const upstreamPath = '/notifications/unread-count';
    const check = await fetch(`${api}${upstreamPath}`, { headers: { authorization: `Bearer ${accessToken}` } });
    if (check.status !== 200) throw new Error(`GET /api${upstreamPath} through the gateway answered ${check.status}: ${await check.text()}`);
    await check.arrayBuffer();

    interface Target {
      label: string;
      url: string;
      /** The proxy process in front of the upstream, if any. */
      pid?: number;
    }

    /**
     * One table per connection count: `targets[0]` is the upstream measured directly, the rest reach
     * it through a proxy; `gatewayRow` is the one the budget is about, `floorRow` the bare proxy.
     */
    async function compare(what: string, upstreamPid: number, targets: Target[], connectionCounts: number[], headers: string[]): Promise<void> {
      const gatewayRow = targets.findIndex((t) => t.label.startsWith('gateway →'));
      const floorRow = targets.findIndex((t) => t.label.startsWith('bare Bun proxy'));
      for (const connections of connectionCounts) {
        const results: Awaited<ReturnType<typeof runLoad>>[][] = targets.map(() => []);
        for (let run = 0; run < RUNS; run++) {
          for (const [i, target] of targets.entries()) {
            results[i]!.push(await runLoad(target.url, connections, headers, [upstreamPid, ...(target.pid ? [target.pid] : [])]));
          }
        }
        const medians = results.map((rs) => ({
          rps: median(rs.map((r) => r.rps)),
          p50: median(rs.map((r) => r.p50Ms)),
          p90: median(rs.map((r) => r.p90Ms)),
          p99: median(rs.map((r) => r.p99Ms)),
          errors: rs.reduce((sum, r) => sum + r.errors, 0),
          firstError: rs.find((r) => r.firstError)?.firstError,
          upstreamUs: median(rs.map((r) => r.cpuUs[0]!)),
          proxyUs: rs[0]!.cpuUs.length > 1 ? median(rs.map((r) => r.cpuUs[1]!)) : NaN,
          clientUs: median(rs.map((r) => r.clientCpuUs)),
          postgresUs: median(rs.map((r) => r.postgresUs)),
          redisUs: median(rs.map((r) => r.redisUs)),
        }));
        const direct = medians[0]!;
        printTable(
          `${what}, ${connections} keep-alive connection${connections === 1 ? '' : 's'}: ${SECONDS} s after ${WARMUP} s warm-up, median of ${RUNS} ` +
            `runs (interleaved). CPU = µs of CPU per request in that process (utime+stime over the measured window; postgres and redis: ` +
            `all processes of that name). Budget: gateway ≥ ${THROUGHPUT_BUDGET * 100}% of direct req/s, ≤ +${ADDED_P50_BUDGET_MS} ms p50.`,
          ['target', 'req/s', 'vs direct', 'p50 ms', '+p50 ms', 'p90 ms', 'p99 ms', 'non-2xx', 'CPU proxy', 'CPU upstream', 'CPU postgres', 'CPU redis', 'CPU client', 'runs (req/s)'],
          targets.map((t, i) => {
            const m = medians[i]!;
            return [
              t.label,
              fixed(m.rps),
              i === 0 ? '' : `${fixed((m.rps / direct.rps) * 100)}%`,
              fixed(m.p50, 3),
              i === 0 ? '' : fixed(m.p50 - direct.p50, 3),
              fixed(m.p90, 3),
              fixed(m.p99, 3),
              m.errors ? `${m.errors} (${m.firstError})` : '0',
              fixed(m.proxyUs),
              fixed(m.upstreamUs),
              fixed(m.postgresUs),
              fixed(m.redisUs),
              fixed(m.clientUs),
              results[i]!.map((r) => r.rps).join(', '),
            ];
          }),
        );
        const gw = medians[gatewayRow]!;
        const floor = medians[floorRow]!;
        const ratio = gw.rps / direct.rps;
        const added = gw.p50 - direct.p50;
        console.log(
          `
gateway: ${fixed(ratio * 100)}% of direct throughput (budget ≥ ${THROUGHPUT_BUDGET * 100}%: ${ratio >= THROUGHPUT_BUDGET ? 'met' : 'missed'}), ` +
            `+${fixed(added, 3)} ms p50 (budget ≤ ${ADDED_P50_BUDGET_MS} ms: ${added <= ADDED_P50_BUDGET_MS ? 'met' : 'missed'}); ` +
            `floor (bare proxy): ${fixed((floor.rps / direct.rps) * 100)}%, +${fixed(floor.p50 - direct.p50, 3)} ms.` +
            (connections > 1
              ? ` With ${connections} connections always busy, p50 ≈ ${connections} / req/s (Little's law): the added p50 here follows from the throughput ratio.`
              : ''),
        );
      }
    }

    const notificationTargets: Target[] = [
      { label: 'direct → notification', url: `${base('notification')}${upstreamPath}` },
      { label: 'bare Bun proxy → notification', url: `${base('bare-proxy')}/api${upstreamPath}`, pid: bareProxy.proc.pid },
      { label: 'gateway, user bucket off', url: `${base('gateway-unlimited')}/api${upstreamPath}`, pid: unlimited.proc.pid },
      ...(compared ? [{ label: 'gateway from --compare-entry', url: `${base('gateway-compared')}/api${upstreamPath}`, pid: compared.proc.pid }] : []),
      { label: 'gateway → notification', url: `${api}${upstreamPath}`, pid: gateway.proc.pid },
    ];

    console.log(`\nBun ${Bun.version}, ${availableParallelism()} cores shared by the client, the servers and PostgreSQL; loopback only.`);
    console.log(
      `Scratch database ${scratch.databaseName}; KV ${args.redis ? `Redis (${REDIS_URL}), shared by every process` : 'in memory, one per process'}; ` +
        `LOG_LEVEL=warn; every service from source (bun services/<name>/src/index.ts).`,
    );
    console.log(`Route: GET ${upstreamPath} (notification verifies the token and runs one count query); gateway user bucket ${BENCH_USER_LIMIT}.`);
    await compare(`GET ${upstreamPath}`, started.notification!.proc.pid, notificationTargets, CONNECTIONS, auth);

    // The floor with nothing behind it: a bare Bun.serve upstream (bench/bare-server.ts) that does
    // no work, so every proxy's own cost shows at full size. The gateway in front of it still
    // verifies the token and charges the user bucket; the upstream checks nothing.
    const trivialEnv = { HOST: '127.0.0.1', PORT: String(ports['trivial-upstream']) };
    const trivial = spawn('bare upstream', [join(ROOT, 'bench/bare-server.ts')], trivialEnv);
    const trivialProxy = spawn('bare proxy → bare upstream', [import.meta.path, '--role', 'bare-proxy'], {
      PORT: String(ports['trivial-proxy']),
      UPSTREAM_URL: base('trivial-upstream'),
    });
    const trivialGateway = spawn('api-gateway → bare upstream', serviceEntry('api-gateway'), {
      ...gatewayEnv(ports['trivial-gateway'], BENCH_USER_LIMIT),
      NOTIFICATION_URL: base('trivial-upstream'),
    });
    await Promise.all([
      waitReady(trivial, `${base('trivial-upstream')}/ready`),
      waitReady(trivialProxy, `${base('trivial-proxy')}/ready`),
      waitReady(trivialGateway, `${base('trivial-gateway')}/ready`),
    ]);
    await compare(
      'Floor: the same path to a bare Bun.serve upstream that does no work',
      trivial.proc.pid,
      [
        { label: 'direct → bare upstream', url: `${base('trivial-upstream')}${upstreamPath}` },
        { label: 'bare Bun proxy → bare upstream', url: `${base('trivial-proxy')}/api${upstreamPath}`, pid: trivialProxy.proc.pid },
        { label: 'gateway → bare upstream', url: `${base('trivial-gateway')}/api${upstreamPath}`, pid: trivialGateway.proc.pid },
      ],
      [Math.max(...CONNECTIONS)],
      auth,
    );

    // Gateway /health: six /ready probes in parallel, all services up, one connection. Each
    // service's own /ready alongside, since the fan-out answers when the slowest probe does.
    const healthTargets = [
      { label: 'gateway GET /health (six /ready in parallel)', url: `${base('api-gateway')}/health`, pid: gateway.proc.pid },
      ...SERVICE_NAMES.map((name) => ({ label: `${name} GET /ready directly`, url: `${base(name)}/ready`, pid: started[name]!.proc.pid })),
    ];
    const healthResults: Awaited<ReturnType<typeof runLoad>>[][] = healthTargets.map(() => []);
    for (let run = 0; run < RUNS; run++) {
      for (const [i, target] of healthTargets.entries()) healthResults[i]!.push(await runLoad(target.url, 1, [], [target.pid]));
    }
    printTable(
      `Health with all six services up: 1 connection, ${SECONDS} s after ${WARMUP} s warm-up, median of ${RUNS} runs (interleaved). ` +
        `CPU = µs of CPU per request in the process answering. Budget: gateway /health p50 ≤ ${HEALTH_P50_BUDGET_MS} ms.`,
      ['target', 'req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'non-2xx', 'CPU', 'in budget', 'runs (p50 ms)'],
      healthTargets.map((t, i) => {
        const rs = healthResults[i]!;
        const p50 = median(rs.map((r) => r.p50Ms));
        const errors = rs.reduce((sum, r) => sum + r.errors, 0);
        return [
          t.label,
          fixed(median(rs.map((r) => r.rps))),
          fixed(p50, 3),
          fixed(median(rs.map((r) => r.p90Ms)), 3),
          fixed(median(rs.map((r) => r.p99Ms)), 3),
          errors ? `${errors} (${rs.find((r) => r.firstError)?.firstError})` : '0',
          fixed(median(rs.map((r) => r.cpuUs[0]!))),
          i === 0 ? (p50 <= HEALTH_P50_BUDGET_MS && errors === 0 ? 'yes' : 'no') : '',
          rs.map((r) => fixed(r.p50Ms, 2)).join(', '),
        ];
      }),
    );
  } catch (err) {
    console.error('gateway bench failed:', err instanceof Error ? err.message : err);
    for (const child of children) {
      const tail = child.stderrTail();
      if (tail) console.error(`--- ${child.name} stderr ---\n${tail}`);
    }
    process.exitCode = 1;
  } finally {
    await scratch.cleanup();
  }
}

if (args.role === 'bare-proxy') bareProxyRole();
else await benchRole();
