/**
 * Fake Cloudgene 3 server hosting the MIS2 `imputationserver2` app, for adapter, registry and
 * end-to-end tests. Follows /work/shared/reference/imputation-protocols.md §1 and §7.
 *
 * Loopback only (`127.0.0.1`). Start in-process:
 *   const fake = await startCloudgeneFake({ tokens: { [makeFakeJwt('alice')]: 'alice' } });
 *   ... fetch(`${fake.url}/api/v2/server`, { headers: { 'X-Auth-Token': token } }) ...
 *   await fake.stop();
 */
import { randomBytes, createHash } from 'node:crypto';
import { deflateRawSync, gzipSync } from 'node:zlib';

// ---------------------------------------------------------------------------------------------
// Public types

export interface FakePanelPopulation {
  id: string;
  label: string;
}

export interface FakePanel {
  id: string;
  version: string;
  label: string;
  build: 'hg19' | 'hg38';
  populations: FakePanelPopulation[];
}

export type FaultKind = 'hang' | 'status500' | 'malformedJson';

export interface FakeFault {
  kind: FaultKind;
  /** Only requests with this method (default: any). */
  method?: string;
  /** Only requests whose path starts with this string / matches this RegExp (default: any). */
  path?: string | RegExp;
  /** Fire this many times, then disappear (default: forever). */
  times?: number;
}

/** Shorthand for a fault: `true` = every request, string/RegExp = path filter. */
export type FaultShorthand = boolean | string | RegExp;

export interface CloudgeneFakeOptions {
  port?: number;
  /** API tokens (X-Auth-Token value) → username. */
  tokens?: Record<string, string>;
  /** Web-login access tokens → username (required for DELETE /api/v2/jobs/{id}). */
  loginTokens?: Record<string, string>;
  /** Usernames with admin rights (no active-job limit, may see every job, exempt from maintenance). */
  admins?: string[];
  appId?: string;
  appVersion?: string;
  panels?: FakePanel[];
  maintenance?: boolean;
  maintenanceMessage?: string;
  /** `maxRunningJobsPerUser`; default 2. */
  maxActiveJobs?: number;
  /** Clock in ms since epoch (default Date.now). `control.advanceClock` adds an offset on top. */
  now?: () => number;
  /** Downloads per result file (default 10; -1 = unlimited). */
  downloadsPerFile?: number;
  /** Days after end until retire notice (state 8/9); default 4. */
  notificationAfterDays?: number;
  /** Days after end until results are deleted (state 7); default 7. */
  retireAfterDays?: number;
  /** 'perPoll' (default): every GET of a job advances one state. 'manual': only control.advance. */
  progression?: 'perPoll' | 'manual';
  /** Every new job fails QC (state 5). A string is used as the QC error message. */
  qcFailure?: boolean | string;
  /** Chromosomes in the results (default ['20']). */
  chromosomes?: string[];
  /** Emit password in the final step message (mail off, default) or just say a mail was sent. */
  mailEnabled?: boolean;
  hang?: FaultShorthand;
  status500?: FaultShorthand;
  malformedJson?: FaultShorthand;
  serverName?: string;
}

export interface RecordedFile {
  field: string;
  name: string;
  size: number;
  type: string;
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: {
    'x-auth-token'?: string;
    authorization?: string;
    'content-type'?: string;
    'user-agent'?: string;
    accept?: string;
  };
  /** Parsed form fields (multipart or urlencoded); repeated fields become arrays. */
  form?: Record<string, string | string[]>;
  files?: RecordedFile[];
  /** JSON body if the request had one. */
  json?: unknown;
  username?: string;
  status?: number;
  time: number;
}

export interface FakeResultFile {
  name: string;
  path: string;
  hash: string;
  count: number;
  sizeBytes: number;
  bytes: Uint8Array;
  contentType: string;
}

export interface FakeLogMessage {
  message: string;
  type: 0 | 1 | 2 | 3;
  time: number;
  success: boolean;
}

export interface FakeStep {
  id: number;
  name: string;
  logMessages: FakeLogMessage[];
}

export interface FakeJob {
  id: string;
  name: string;
  appIdUsed: string;
  username: string;
  state: number;
  submittedOn: number;
  startTime: number;
  endTime: number;
  deletedOn: number;
  userAgent: string;
  params: Record<string, string>;
  inputFiles: RecordedFile[];
  steps: FakeStep[];
  files: FakeResultFile[];
  outputHash: string;
  password: string;
  /** QC failure message if this job is scripted to fail QC. */
  qcFailure?: string;
  /** Fail with this (non-QC) error at input validation. */
  failure?: string;
}

export interface CloudgeneFakeControl {
  /** Every request received, in order. */
  readonly requests: RecordedRequest[];
  readonly jobs: Map<string, FakeJob>;
  maintenance: boolean;
  maxActiveJobs: number;
  progression: 'perPoll' | 'manual';
  /** QC failure for all new jobs (string = message). */
  qcFailure: boolean | string;
  faults: FakeFault[];
  panels: FakePanel[];
  downloadsPerFile: number;
  now(): number;
  advanceClock(ms: number): void;
  advanceClockDays(days: number): void;
  /** Advance a job one step (1→2→3→4, or →5 for scripted failures), or jump to `toState`. */
  advance(jobId: string, toState?: number): FakeJob;
  /** Advance until a terminal state (4 or 5). */
  complete(jobId: string): FakeJob;
  /** Script a QC failure for an existing (non-terminal) job. */
  failQc(jobId: string, message?: string): void;
  /** Mark job dead (state −1), as after a server restart mid-run. */
  kill(jobId: string): void;
  addFault(f: FakeFault): void;
  clearFaults(): void;
  clearRequests(): void;
  addToken(token: string, username: string, kind?: 'api' | 'login'): void;
  revokeToken(token: string): void;
  /** Apply retirement rules now (also applied on every request). */
  tick(): void;
  /** Requests whose path starts with `prefix` (and method if given). */
  requestsTo(prefix: string, method?: string): RecordedRequest[];
}

export interface CloudgeneFake {
  url: string;
  port: number;
  stop(): Promise<void>;
  control: CloudgeneFakeControl;
}

// ---------------------------------------------------------------------------------------------
// Defaults and helpers

export const DEFAULT_QC_FAILURE_MESSAGE =
  '<b>Error:</b> More than 100 obvious strand flips have been detected. Please check strand. Imputation cannot be started!';

export const DEFAULT_PANELS: FakePanel[] = [
  {
    id: 'hapmap-2',
    version: '2.0.0',
    label: 'HapMap 2',
    build: 'hg19',
    populations: [
      { id: 'eur', label: 'EUR' },
      { id: 'afr', label: 'AFR' },
      { id: 'asn', label: 'ASN' },
      { id: 'off', label: 'Off' },
    ],
  },
  {
    id: '1000g-phase-3-v5',
    version: '2.0.0',
    label: '1000G Phase 3 (GRCh37/hg19)',
    build: 'hg19',
    populations: [
      { id: 'afr', label: 'AFR' },
      { id: 'amr', label: 'AMR' },
      { id: 'eur', label: 'EUR' },
      { id: 'sas', label: 'SAS' },
      { id: 'eas', label: 'EAS' },
      { id: 'off', label: 'Off' },
    ],
  },
  {
    id: 'hrc-r1.1',
    version: '2.0.0',
    label: 'HRC r1.1 2016 (GRCh37/hg19)',
    build: 'hg19',
    populations: [
      { id: 'eur', label: 'EUR' },
      { id: 'mixed', label: 'Other/Mixed' },
      { id: 'off', label: 'Off' },
    ],
  },
];

const b64url = (s: string): string => Buffer.from(s).toString('base64url');

/** A JWT-looking (unsigned-by-anyone-real) API token for `username`, like Cloudgene issues. */
export function makeFakeJwt(username: string, opts: { api?: boolean; expDays?: number } = {}): string {
  const now = Math.floor(Date.now() / 1000);
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const payload = b64url(
    JSON.stringify({
      sub: username,
      username,
      name: username,
      mail: `${username}@example.org`,
      api: opts.api ?? true,
      type: opts.api === false ? 'access_token' : 'api_token',
      api_hash: randomBytes(15).toString('hex'),
      iat: now,
      exp: now + (opts.expDays ?? 30) * 86400,
    }),
  );
  return `${header}.${payload}.${randomBytes(32).toString('base64url')}`;
}

const STATE_NAMES: Record<number, string> = {
  [-1]: 'DEAD',
  1: 'WAITING',
  2: 'RUNNING',
  3: 'EXPORTING',
  4: 'SUCCESS',
  5: 'FAILED',
  6: 'CANCELED',
  7: 'RETIRED',
  8: 'SUCCESS_NOTIFIED',
  9: 'FAILED_NOTIFIED',
  10: 'DELETED',
};
export const cloudgeneStateName = (s: number): string => STATE_NAMES[s] ?? `UNKNOWN(${s})`;

const ACTIVE_STATES = new Set([1, 2, 3]);
const DAY = 86_400_000;

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');
function jobIdFor(ms: number): string {
  const d = new Date(ms);
  return `job-${d.getUTCFullYear()}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}-${pad(d.getUTCHours())}${pad(
    d.getUTCMinutes(),
  )}${pad(d.getUTCSeconds())}-${pad(d.getUTCMilliseconds(), 3)}`;
}

function humanSize(n: number): string {
  if (n < 1024) return `${n} bytes`;
  if (n < 1024 * 1024) return `${Math.round(n / 1024)} KB`;
  return `${Math.round(n / 1024 / 1024)} MB`;
}

const escapeHtml = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');

function generatePassword(): string {
  const pick = (set: string, n: number): string[] =>
    Array.from({ length: n }, () => set[randomBytes(1)[0]! % set.length]!);
  const chars = [
    ...pick('ABCDEFGHIJKLMNOPQRSTUVWXYZ', 5),
    ...pick('abcdefghijklmnopqrstuvwxyz', 5),
    ...pick('0123456789', 2),
    ...pick('!@#%&*()_+[]{};:.<>?-=', 2),
  ];
  for (let i = chars.length - 1; i > 0; i--) {
    const j = randomBytes(1)[0]! % (i + 1);
    [chars[i], chars[j]] = [chars[j]!, chars[i]!];
  }
  return chars.join('');
}

// ---------------------------------------------------------------------------------------------
// Minimal zip writer (deflate + optional ZipCrypto, PKWARE traditional encryption)

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();
const crcByte = (crc: number, b: number): number => (CRC_TABLE[(crc ^ b) & 0xff]! ^ (crc >>> 8)) >>> 0;
export function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of data) c = crcByte(c, b);
  return (c ^ 0xffffffff) >>> 0;
}

function zipCryptoEncrypt(password: string, crc: number, data: Uint8Array): Uint8Array {
  let k0 = 0x12345678;
  let k1 = 0x23456789;
  let k2 = 0x34567890;
  const update = (c: number): void => {
    k0 = crcByte(k0, c);
    k1 = (Math.imul((k1 + (k0 & 0xff)) >>> 0, 134775813) + 1) >>> 0;
    k2 = crcByte(k2, k1 >>> 24);
  };
  const streamByte = (): number => {
    const t = (k2 | 2) & 0xffff;
    return (Math.imul(t, t ^ 1) >>> 8) & 0xff;
  };
  for (const c of Buffer.from(password, 'utf8')) update(c);
  const header = randomBytes(12);
  header[11] = (crc >>> 24) & 0xff;
  const out = new Uint8Array(12 + data.length);
  const plain = new Uint8Array(12 + data.length);
  plain.set(header, 0);
  plain.set(data, 12);
  for (let i = 0; i < plain.length; i++) {
    const p = plain[i]!;
    out[i] = p ^ streamByte();
    update(p);
  }
  return out;
}

/** Build a real .zip (deflated; ZipCrypto-encrypted when `password` is given). */
export function buildZip(entries: { name: string; data: Uint8Array }[], password?: string): Uint8Array {
  const locals: Uint8Array[] = [];
  const centrals: Uint8Array[] = [];
  let offset = 0;
  const dosTime = 0; // 00:00:00
  const dosDate = ((2024 - 1980) << 9) | (1 << 5) | 1;
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8');
    const crc = crc32(e.data);
    let body: Uint8Array = new Uint8Array(deflateRawSync(e.data));
    const flags = (password ? 0x1 : 0) | 0x800;
    if (password) body = zipCryptoEncrypt(password, crc, body);
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(0x04034b50, 0);
    lh.writeUInt16LE(20, 4);
    lh.writeUInt16LE(flags, 6);
    lh.writeUInt16LE(8, 8);
    lh.writeUInt16LE(dosTime, 10);
    lh.writeUInt16LE(dosDate, 12);
    lh.writeUInt32LE(crc, 14);
    lh.writeUInt32LE(body.length, 18);
    lh.writeUInt32LE(e.data.length, 22);
    lh.writeUInt16LE(name.length, 26);
    lh.writeUInt16LE(0, 28);
    const ch = Buffer.alloc(46);
    ch.writeUInt32LE(0x02014b50, 0);
    ch.writeUInt16LE(20, 4);
    ch.writeUInt16LE(20, 6);
    ch.writeUInt16LE(flags, 8);
    ch.writeUInt16LE(8, 10);
    ch.writeUInt16LE(dosTime, 12);
    ch.writeUInt16LE(dosDate, 14);
    ch.writeUInt32LE(crc, 16);
    ch.writeUInt32LE(body.length, 20);
    ch.writeUInt32LE(e.data.length, 24);
    ch.writeUInt16LE(name.length, 28);
    ch.writeUInt32LE(offset, 42);
    locals.push(lh, name, body);
    centrals.push(ch, name);
    offset += lh.length + name.length + body.length;
  }
  const cdSize = centrals.reduce((a, b) => a + b.length, 0);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cdSize, 12);
  end.writeUInt32LE(offset, 16);
  return new Uint8Array(Buffer.concat([...locals, ...centrals, end]));
}

function tinyDoseVcf(chr: string, panel: string, phasing: string): string {
  return [
    '##fileformat=VCFv4.1',
    '##filedate=20240101',
    '##source=Minimac4.v1.0.2',
    '##mis_pipeline=2.0.12',
    `##mis_phasing=${phasing}`,
    `##mis_panel=${panel}`,
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
    '##FORMAT=<ID=DS,Number=1,Type=Float,Description="Estimated Alternate Allele Dosage">',
    '##FORMAT=<ID=GP,Number=3,Type=Float,Description="Estimated Posterior Probabilities">',
    '##FORMAT=<ID=HDS,Number=2,Type=Float,Description="Estimated Haploid Alternate Allele Dosage">',
    '##INFO=<ID=R2,Number=1,Type=Float,Description="Estimated Imputation Accuracy (R-square)">',
    `##contig=<ID=${chr}>`,
    '#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\tS2',
    `${chr}\t60343\t${chr}:60343:G:A\tG\tA\t.\tPASS\tAF=0.01;MAF=0.01;R2=0.52;IMPUTED\tGT:DS:GP:HDS\t0|0:0.02:0.98,0.02,0:0.01,0.01\t0|1:1:0,1,0:0,1`,
    `${chr}\t61098\t${chr}:61098:C:T\tC\tT\t.\tPASS\tAF=0.3;MAF=0.3;R2=0.98;TYPED\tGT:DS:GP:HDS\t1|1:2:0,0,1:1,1\t0|0:0:1,0,0:0,0`,
    '',
  ].join('\n');
}

function tinyInfo(chr: string): string {
  return [
    '##fileformat=VCFv4.1',
    '#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO',
    `${chr}\t60343\t${chr}:60343:G:A\tG\tA\t.\tPASS\tAF=0.01;MAF=0.01;AVG_CS=0.99;R2=0.52;IMPUTED`,
    `${chr}\t61098\t${chr}:61098:C:T\tC\tT\t.\tPASS\tAF=0.3;MAF=0.3;AVG_CS=1;R2=0.98;ER2=0.97;TYPED`,
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Server

interface AuthInfo {
  username: string;
  kind: 'api' | 'login';
  admin: boolean;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly plain = false,
  ) {
    super(message);
  }
}

const KNOWN_FIELDS = new Set([
  'files',
  'refpanel',
  'build',
  'r2Filter',
  'phasing',
  'population',
  'mode',
  'aesEncryption',
  'meta',
  'password',
  'job-name',
  'check1',
  'check2',
]);

export async function startCloudgeneFake(options: CloudgeneFakeOptions = {}): Promise<CloudgeneFake> {
  const appId = options.appId ?? 'imputationserver2';
  const appVersion = options.appVersion ?? '2.0.12';
  const apiTokens = new Map<string, string>(Object.entries(options.tokens ?? {}));
  const loginTokens = new Map<string, string>(Object.entries(options.loginTokens ?? {}));
  const admins = new Set(options.admins ?? []);
  const baseNow = options.now ?? (() => Date.now());
  let clockOffset = 0;
  const notificationAfter = (options.notificationAfterDays ?? 4) * DAY;
  const retireAfter = (options.retireAfterDays ?? 7) * DAY;
  const chromosomes = options.chromosomes ?? ['20'];
  const mailEnabled = options.mailEnabled ?? false;
  const hanging = new Set<() => void>();
  const filesByHash = new Map<string, { job: FakeJob; file: FakeResultFile }>();
  let lastJobMs = 0;

  const faults: FakeFault[] = [];
  const shorthand = (kind: FaultKind, v: FaultShorthand | undefined): void => {
    if (v === undefined || v === false) return;
    faults.push(v === true ? { kind } : { kind, path: v });
  };
  shorthand('hang', options.hang);
  shorthand('status500', options.status500);
  shorthand('malformedJson', options.malformedJson);

  const jobs = new Map<string, FakeJob>();
  const requests: RecordedRequest[] = [];
  const totals = { runs: 0, samples: 0, genotypes: 0 };

  const control: CloudgeneFakeControl = {
    requests,
    jobs,
    maintenance: options.maintenance ?? false,
    maxActiveJobs: options.maxActiveJobs ?? 2,
    progression: options.progression ?? 'perPoll',
    qcFailure: options.qcFailure ?? false,
    faults,
    panels: options.panels ?? DEFAULT_PANELS.map((p) => ({ ...p, populations: [...p.populations] })),
    downloadsPerFile: options.downloadsPerFile ?? 10,
    now: () => baseNow() + clockOffset,
    advanceClock(ms) {
      clockOffset += ms;
      control.tick();
    },
    advanceClockDays(days) {
      control.advanceClock(days * DAY);
    },
    advance(jobId, toState) {
      const job = mustJob(jobId);
      if (toState !== undefined) setState(job, toState);
      else step(job);
      return job;
    },
    complete(jobId) {
      const job = mustJob(jobId);
      for (let i = 0; i < 10 && ACTIVE_STATES.has(job.state); i++) step(job);
      return job;
    },
    failQc(jobId, message) {
      mustJob(jobId).qcFailure = message ?? DEFAULT_QC_FAILURE_MESSAGE;
    },
    kill(jobId) {
      const job = mustJob(jobId);
      job.state = -1;
      job.endTime = control.now();
    },
    addFault(f) {
      faults.push(f);
    },
    clearFaults() {
      faults.length = 0;
      for (const release of hanging) release();
    },
    clearRequests() {
      requests.length = 0;
    },
    addToken(token, username, kind = 'api') {
      if (kind === 'api') {
        // One live API token per user: a new one invalidates the previous.
        for (const [t, u] of apiTokens) if (u === username) apiTokens.delete(t);
        apiTokens.set(token, username);
      } else loginTokens.set(token, username);
    },
    revokeToken(token) {
      apiTokens.delete(token);
      loginTokens.delete(token);
    },
    tick() {
      const now = control.now();
      for (const job of jobs.values()) {
        if (job.endTime <= 0) continue;
        if ((job.state === 4 || job.state === 5 || job.state === 6) && now >= job.endTime + notificationAfter) {
          job.state = job.state === 4 ? 8 : 9;
          job.deletedOn = now + (retireAfter - notificationAfter);
        }
        if ((job.state === 8 || job.state === 9) && job.deletedOn > 0 && now >= job.deletedOn) {
          job.state = 7;
          dropFiles(job);
        }
      }
    },
    requestsTo(prefix, method) {
      return requests.filter((r) => r.path.startsWith(prefix) && (!method || r.method === method.toUpperCase()));
    },
  };

  function mustJob(id: string): FakeJob {
    const j = jobs.get(id);
    if (!j) throw new Error(`fake cloudgene: no job ${id}`);
    return j;
  }

  function dropFiles(job: FakeJob): void {
    for (const f of job.files) filesByHash.delete(f.hash);
    job.files = [];
  }

  function msg(job: FakeJob, stepName: string, message: string, type: 0 | 1 | 2 | 3): void {
    let s = job.steps.find((x) => x.name === stepName);
    if (!s) {
      s = { id: job.steps.length + 1, name: stepName, logMessages: [] };
      job.steps.push(s);
    }
    // Replace a previous "running" message of the same step.
    s.logMessages = s.logMessages.filter((m) => m.type !== 3);
    s.logMessages.push({ message, type, time: control.now(), success: type !== 1 });
  }

  function addFile(job: FakeJob, name: string, bytes: Uint8Array, contentType: string): void {
    const hash = createHash('sha256').update(randomBytes(32)).digest('hex');
    const f: FakeResultFile = {
      name,
      path: `${job.id}/output/${name}`,
      hash,
      count: control.downloadsPerFile,
      sizeBytes: bytes.length,
      bytes,
      contentType,
    };
    job.files.push(f);
    filesByHash.set(hash, { job, file: f });
  }

  function qcFiles(job: FakeJob, failed: boolean): void {
    const enc = new TextEncoder();
    const report = [
      `Alternative allele frequency > 0.5 sites: 12`,
      `Reference Overlap: ${failed ? '41.20' : '98.76'} %`,
      `Match: 4,321`,
      `Allele switch: 3`,
      `Strand flip: ${failed ? 512 : 0}`,
      `Strand flip and allele switch: 0`,
      `A/T, C/G genotypes: 7`,
      `Filtered sites:`,
      `Filter flag set: 0`,
      `Invalid alleles: 0`,
      `Multiallelic sites: 0`,
      `Duplicated sites: 0`,
      `NonSNP sites: 0`,
      `Monomorphic sites: 2`,
      `Allele mismatch: 1`,
      `SNPs call rate < 90%: 0`,
      `Excluded sites in total: 3`,
      `Remaining sites in total: 4,318`,
      '',
    ].join('\n');
    addFile(job, 'qc_report.txt', enc.encode(report), 'text/plain');
    addFile(
      job,
      'quality-control.html',
      enc.encode(`<html><body><h1>Quality Control Report</h1><pre>${escapeHtml(report)}</pre></body></html>`),
      'text/html',
    );
    addFile(
      job,
      'statistics/snps-excluded.txt',
      enc.encode('#Position\tFilterType\tInfo\n20:60100:A:G\tMonomorphic\t-\n'),
      'text/plain',
    );
  }

  function resultFiles(job: FakeJob): void {
    const panel = job.params.refpanel ?? '';
    const phasing = job.params.phasing ?? 'eagle';
    for (const chr of chromosomes) {
      const zip = buildZip(
        [
          { name: `chr${chr}.dose.vcf.gz`, data: new Uint8Array(gzipSync(tinyDoseVcf(chr, panel, phasing))) },
          { name: `chr${chr}.info.gz`, data: new Uint8Array(gzipSync(tinyInfo(chr))) },
        ],
        job.password,
      );
      addFile(job, `chr_${chr}.zip`, zip, 'application/zip');
    }
  }

  function resolvePanel(value: string): FakePanel | undefined {
    const parts = value.split('@');
    let id = value;
    let version: string | undefined;
    if (parts[0] === 'apps' && parts.length >= 2) {
      id = parts[1]!;
      version = parts[2];
    } else if (parts.length === 2) {
      id = parts[0]!;
      version = parts[1];
    }
    return control.panels.find((p) => p.id === id && (version === undefined || p.version === version));
  }

  /** One state transition following the MIS2 pipeline. */
  function step(job: FakeJob): void {
    const now = control.now();
    switch (job.state) {
      case 1: {
        job.state = 2;
        job.startTime = now;
        const panel = resolvePanel(job.params.refpanel ?? '');
        if (!panel) {
          job.failure = `Application '${job.params.refpanel ?? ''}' is not installed or wrong permissions.`;
        }
        msg(job, 'Input Validation', 'Validating input files...', 3);
        return;
      }
      case 2: {
        if (job.failure) {
          msg(job, 'Input Validation', `<b>Error:</b> ${escapeHtml(job.failure)}`, 1);
          finish(job, 5);
          return;
        }
        msg(
          job,
          'Input Validation',
          `${job.inputFiles.length} valid VCF file(s) found.<br><br>Samples: 51<br>Chromosomes: ${chromosomes.join(
            ' ',
          )}<br>SNPs: 4321<br>Chunks: 1<br>Datatype: unphased<br>Build: ${job.params.build}<br>Reference Panel: ${escapeHtml(
            job.params.refpanel ?? '',
          )}<br>Population: ${job.params.population}<br>Phasing: ${job.params.phasing}<br>Mode: ${job.params.mode}`,
          0,
        );
        if (job.qcFailure) {
          msg(job, 'Quality Control', job.qcFailure, 1);
          qcFiles(job, true);
          finish(job, 5);
          return;
        }
        msg(job, 'Quality Control', 'Calculating QC Statistics<br><br>Excluded sites in total: 3<br>Remaining sites in total: 4,318', 0);
        if (job.params.mode !== 'imputation') {
          // QC-only: no imputation steps; results are the QC files.
          job.state = 3;
          return;
        }
        msg(job, 'Phasing and Imputation', 'Imputation of 1 chunk(s)...', 3);
        job.state = 3;
        return;
      }
      case 3: {
        qcFiles(job, false);
        if (job.params.mode === 'imputation') {
          msg(job, 'Phasing and Imputation', `Phasing with ${escapeHtml(job.params.phasing ?? 'eagle')} and imputation of 1 chunk(s) completed.`, 0);
          resultFiles(job);
          msg(
            job,
            'Summary',
            mailEnabled
              ? 'We have sent an email with the password to decrypt the results.'
              : `Data have been exported successfully. We have encrypted the results with the following password: <b>${escapeHtml(
                  job.password,
                )}</b>`,
            0,
          );
        }
        totals.runs++;
        totals.samples += 51;
        totals.genotypes += 51 * 4321;
        finish(job, 4);
        return;
      }
      default:
        return; // terminal
    }
  }

  function finish(job: FakeJob, state: number): void {
    job.state = state;
    job.endTime = control.now();
    if (job.startTime <= 0) job.startTime = job.endTime;
  }

  function setState(job: FakeJob, to: number): void {
    if (to === 4 || to === 5) {
      if (to === 5 && !job.qcFailure && !job.failure) job.qcFailure = DEFAULT_QC_FAILURE_MESSAGE;
      for (let i = 0; i < 10 && ACTIVE_STATES.has(job.state); i++) step(job);
      if (job.state !== to) finish(job, to);
      return;
    }
    if (to === 7) dropFiles(job);
    if (to === 8 || to === 9) job.deletedOn = control.now() + (retireAfter - notificationAfter);
    if (to === 6 || to === -1 || to === 7) job.endTime = job.endTime > 0 ? job.endTime : control.now();
    if (to === 2 && job.startTime <= 0) job.startTime = control.now();
    job.state = to;
  }

  function positionInQueue(job: FakeJob): number {
    if (job.state !== 1) return -1;
    const waiting = [...jobs.values()].filter((j) => j.state === 1).sort((a, b) => a.submittedOn - b.submittedOn);
    return waiting.indexOf(job);
  }

  function jobJson(job: FakeJob, viewer: AuthInfo | undefined): Record<string, unknown> {
    const outputHash = job.outputHash;
    const files = job.files.map((f) => ({
      name: f.name,
      path: f.path,
      hash: f.hash,
      count: f.count,
      size: humanSize(f.sizeBytes),
      parameterId: 1,
      user: job.username,
    }));
    return {
      id: job.id,
      name: job.name,
      application: `Genotype Imputation ${appVersion}`,
      applicationId: job.appIdUsed,
      state: job.state,
      positionInQueue: positionInQueue(job),
      submittedOn: job.submittedOn,
      startTime: job.startTime,
      endTime: job.endTime,
      deletedOn: job.deletedOn,
      currentTime: control.now(),
      userAgent: job.userAgent,
      username: job.username,
      logs: viewer?.admin ? `logs/${job.id}` : '',
      workspaceSize: humanSize(job.files.reduce((a, f) => a + f.sizeBytes, 0)),
      steps: job.steps.map((s) => ({
        id: s.id,
        name: s.name,
        empty: s.logMessages.length === 0,
        logMessages: s.logMessages.map((m) => ({ ...m })),
      })),
      outputParams: [
        {
          id: 1,
          name: 'output',
          description: 'Downloads',
          value: `${job.id}/output`,
          download: true,
          jobId: job.id,
          hash: outputHash,
          autoExport: false,
          tree: [],
          files,
        },
      ],
    };
  }

  // ----- HTTP plumbing

  const json = (status: number, body: unknown): Response =>
    new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
  const err = (status: number, message: string): Response => json(status, { message, success: false });

  function authenticate(req: Request): AuthInfo | undefined {
    const t = req.headers.get('x-auth-token');
    if (!t) return undefined;
    const api = apiTokens.get(t);
    if (api) return { username: api, kind: 'api', admin: admins.has(api) };
    const login = loginTokens.get(t);
    if (login) return { username: login, kind: 'login', admin: admins.has(login) };
    return undefined;
  }
  function requireAuth(req: Request): AuthInfo {
    const a = authenticate(req);
    if (!a) throw new HttpError(401, 'Unauthorized');
    return a;
  }
  function ownedJob(id: string, auth: AuthInfo): FakeJob {
    const job = jobs.get(id);
    if (!job) throw new HttpError(404, `Job ${id} not found.`);
    if (job.username !== auth.username && !auth.admin) throw new HttpError(403, 'Access denied.');
    return job;
  }
  function checkMaintenance(auth: AuthInfo | undefined): void {
    if (control.maintenance && !auth?.admin)
      throw new HttpError(503, 'This functionality is currently under maintenance.');
  }

  function matchFault(method: string, path: string): FakeFault | undefined {
    const i = faults.findIndex(
      (f) =>
        (!f.method || f.method.toUpperCase() === method) &&
        (f.path === undefined || (typeof f.path === 'string' ? path.startsWith(f.path) : f.path.test(path))),
    );
    if (i < 0) return undefined;
    const f = faults[i]!;
    if (f.times !== undefined) {
      f.times--;
      if (f.times <= 0) faults.splice(i, 1);
    }
    return f;
  }

  async function parseForm(
    req: Request,
    rec: RecordedRequest,
  ): Promise<{ fields: [string, string][]; files: (RecordedFile & { data: Blob })[] }> {
    const ct = req.headers.get('content-type') ?? '';
    const fields: [string, string][] = [];
    const files: (RecordedFile & { data: Blob })[] = [];
    if (ct.includes('multipart/form-data') || ct.includes('application/x-www-form-urlencoded')) {
      let fd: Awaited<ReturnType<Request['formData']>>;
      try {
        fd = await req.formData();
      } catch {
        throw new HttpError(400, 'Invalid form data.');
      }
      for (const [k, v] of fd.entries()) {
        if (typeof v === 'string') fields.push([k, v]);
        else {
          const file = v as unknown as File;
          files.push({ field: k, name: file.name, size: file.size, type: file.type, data: file });
        }
      }
    } else if (ct.includes('application/json')) {
      const text = await req.text();
      try {
        rec.json = JSON.parse(text);
      } catch {
        rec.json = text;
      }
    }
    const form: Record<string, string | string[]> = {};
    const add = (k: string, v: string): void => {
      const cur = form[k];
      form[k] = cur === undefined ? v : Array.isArray(cur) ? [...cur, v] : [cur, v];
    };
    for (const [k, v] of fields) add(k, v);
    for (const f of files) add(f.field, f.name);
    rec.form = form;
    rec.files = files.map(({ field, name, size, type }) => ({ field, name, size, type }));
    return { fields, files };
  }

  // ----- Routes

  async function route(req: Request, url: URL, rec: RecordedRequest): Promise<Response> {
    const { pathname: p } = url;
    const m = req.method;
    let g: RegExpMatchArray | null;

    if (m === 'POST' && p === '/api/v2/tokens/verify') {
      const { fields } = await parseForm(req, rec);
      const token = fields.find(([k]) => k === 'token')?.[1] ?? '';
      const user = apiTokens.get(token);
      if (!user) return json(200, { valid: false, message: 'Invalid API Token.' });
      let expire = new Date(control.now() + 30 * DAY).toISOString();
      try {
        const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()) as { exp?: number };
        if (typeof payload.exp === 'number') expire = new Date(payload.exp * 1000).toISOString();
      } catch {
        /* not a decodable JWT: keep default expiry */
      }
      return json(200, {
        valid: true,
        message: 'API Token is valid.',
        username: user,
        name: user,
        mail: `${user}@example.org`,
        expire,
      });
    }

    if (m === 'GET' && p === '/api/v2/server') {
      const auth = authenticate(req);
      return json(200, {
        name: options.serverName ?? 'Fake Imputation Server',
        loggedIn: !!auth,
        user: auth
          ? { username: auth.username, mail: `${auth.username}@example.org`, admin: auth.admin, name: auth.username }
          : null,
        apps: auth ? [{ id: appId, name: 'Genotype Imputation', version: appVersion }] : [],
        deprecatedApps: [],
        experimentalApps: [],
        emailRequired: true,
        oauth: [],
        navigation: [],
        footer: '',
        maintenace: control.maintenance,
        maintenaceMessage: control.maintenance
          ? (options.maintenanceMessage ?? 'The server is currently under maintenance.')
          : '',
      });
    }

    if (m === 'GET' && p === '/api/v2/server/counters') {
      const active = [...jobs.values()].filter((j) => j.state === 1 || j.state === 2).length;
      const users = new Set([...apiTokens.values(), ...loginTokens.values()]).size;
      return json(200, { complete: { ...totals }, queue: { size: active }, users });
    }

    if (m === 'GET' && (g = p.match(/^\/api\/v2\/server\/apps\/([^/]+)$/))) {
      const auth = requireAuth(req);
      void auth;
      const requested = decodeURIComponent(g[1]!);
      if (requested !== appId && requested !== `${appId}@${appVersion}`)
        throw new HttpError(404, `Application '${requested}' not found or the request requires authentication.`);
      return json(200, appSchema());
    }

    if (m === 'POST' && (g = p.match(/^\/api\/v2\/jobs\/submit\/([^/]+)$/))) {
      const auth = requireAuth(req);
      checkMaintenance(auth);
      const requested = decodeURIComponent(g[1]!);
      if (requested !== appId && requested !== `${appId}@${appVersion}`)
        throw new HttpError(404, `Application '${requested}' not found or the request requires authentication.`);
      const { fields, files } = await parseForm(req, rec);
      const params: Record<string, string> = {};
      const inputFiles: RecordedFile[] = [];
      const urlFiles: string[] = [];
      for (const [rawKey, v] of fields) {
        const k = rawKey.startsWith('input-') ? rawKey.slice(6) : rawKey;
        if (!KNOWN_FIELDS.has(k)) throw new HttpError(400, `Parameter '${rawKey}' not found.`);
        if (k === 'files') urlFiles.push(v);
        else params[k] = v;
      }
      for (const f of files) {
        const k = f.field.startsWith('input-') ? f.field.slice(6) : f.field;
        if (!KNOWN_FIELDS.has(k)) throw new HttpError(400, `Parameter '${f.field}' not found.`);
        if (k !== 'files') throw new HttpError(400, `Parameter '${f.field}' is not a file parameter.`);
        inputFiles.push({ field: f.field, name: f.name, size: f.size, type: f.type });
      }
      if (inputFiles.length === 0 && urlFiles.length === 0)
        throw new HttpError(400, "Parameter 'files' is required.");
      if (!params.refpanel) throw new HttpError(400, "Parameter 'refpanel' is required.");
      if (!auth.admin) {
        const active = [...jobs.values()].filter((j) => j.username === auth.username && ACTIVE_STATES.has(j.state));
        if (active.length >= control.maxActiveJobs)
          throw new HttpError(400, `Only ${control.maxActiveJobs} jobs per user can be executed simultaneously.`);
      }
      // Defaults (absent visible checkboxes → false; lists → default values).
      params.build ??= 'hg19';
      params.r2Filter ??= '0';
      params.phasing ??= 'eagle';
      params.population ??= 'off';
      params.mode ??= 'imputation';
      params.aesEncryption ??= 'false';
      params.meta ??= 'false';
      let ms = control.now();
      if (ms <= lastJobMs) ms = lastJobMs + 1;
      lastJobMs = ms;
      const id = jobIdFor(ms);
      const password = params.password ?? generatePassword();
      delete params.password; // never echoed back
      for (const u of urlFiles) inputFiles.push({ field: 'files', name: u, size: 0, type: 'text/uri-list' });
      const job: FakeJob = {
        id,
        name: escapeHtml(params['job-name'] ?? id),
        appIdUsed: requested,
        username: auth.username,
        state: 1,
        submittedOn: control.now(),
        startTime: 0,
        endTime: 0,
        deletedOn: -1,
        userAgent: req.headers.get('user-agent') ?? '',
        params,
        inputFiles,
        steps: [],
        files: [],
        outputHash: createHash('sha256').update(randomBytes(32)).digest('hex'),
        password,
      };
      if (control.qcFailure)
        job.qcFailure = typeof control.qcFailure === 'string' ? control.qcFailure : DEFAULT_QC_FAILURE_MESSAGE;
      jobs.set(id, job);
      return json(200, { id, message: 'Your job was successfully added to the job queue.', success: true });
    }

    if (m === 'GET' && p === '/api/v2/jobs') {
      const auth = requireAuth(req);
      const all = [...jobs.values()]
        .filter((j) => auth.admin || j.username === auth.username)
        .sort((a, b) => b.submittedOn - a.submittedOn)
        .map((j) => jobJson(j, auth));
      const pageParam = url.searchParams.get('page');
      if (pageParam === null) return json(200, { count: all.length, page: 1, pageSize: all.length, data: all });
      const pageSize = 15;
      const pagesTotal = Math.max(1, Math.ceil(all.length / pageSize));
      const page = Math.min(Math.max(1, Number.parseInt(pageParam, 10) || 1), pagesTotal);
      return json(200, {
        count: all.length,
        page,
        pageSize,
        prev: page > 1 ? page - 1 : null,
        next: page < pagesTotal ? page + 1 : null,
        pages: Array.from({ length: pagesTotal }, (_, i) => i + 1),
        data: all.slice((page - 1) * pageSize, page * pageSize),
      });
    }

    if ((g = p.match(/^\/api\/v2\/jobs\/([^/]+)(?:\/(status|cancel|restart))?$/))) {
      const id = decodeURIComponent(g[1]!);
      const action = g[2];
      const auth = requireAuth(req);
      if (m === 'GET' && !action) {
        const job = ownedJob(id, auth);
        if (control.progression === 'perPoll') step(job);
        return json(200, jobJson(job, auth));
      }
      if (m === 'GET' && action === 'status') {
        const job = ownedJob(id, auth);
        if (control.progression === 'perPoll') step(job);
        return json(200, jobJson(job, auth));
      }
      if (m === 'GET' && action === 'cancel') {
        const job = ownedJob(id, auth);
        if (ACTIVE_STATES.has(job.state)) {
          job.state = 6;
          job.endTime = control.now();
          msg(job, job.steps.at(-1)?.name ?? 'Input Validation', 'Job canceled by user.', 1);
        }
        return json(200, jobJson(job, auth));
      }
      if (m === 'GET' && action === 'restart') {
        const job = ownedJob(id, auth);
        if (job.state !== -1) throw new HttpError(400, `Job ${id} is not pending.`);
        job.state = 1;
        job.startTime = 0;
        job.endTime = 0;
        job.steps = [];
        return json(200, { success: true, message: `Job ${id} restarted.` });
      }
      if (m === 'DELETE' && !action) {
        const job = ownedJob(id, auth);
        if (auth.kind !== 'login') throw new HttpError(403, 'Access denied.');
        job.state = 10;
        job.deletedOn = control.now();
        dropFiles(job);
        jobs.delete(id);
        return json(200, jobJson(job, auth));
      }
    }

    if (m === 'GET' && (g = p.match(/^\/logs\/([^/]+)$/))) {
      const auth = requireAuth(req);
      const job = ownedJob(decodeURIComponent(g[1]!), auth);
      const lines = job.steps.flatMap((s) => s.logMessages.map((l) => `[${s.name}] ${l.message.replace(/<[^>]+>/g, '')}`));
      return new Response(`${lines.join('\n')}\n`, { headers: { 'content-type': 'text/plain' } });
    }

    if (
      m === 'GET' &&
      ((g = p.match(/^\/share\/results\/([0-9a-f]{64})\/(.+)$/)) ||
        (g = p.match(/^\/downloads\/[^/]+\/([0-9a-f]{64})\/(.+)$/)))
    ) {
      const entry = filesByHash.get(g[1]!);
      const name = decodeURIComponent(g[2]!);
      if (!entry || entry.file.name !== name) throw new HttpError(404, 'file not found.');
      const f = entry.file;
      if (f.count === 0) return json(400, { success: false, message: 'number of max downloads exceeded.' });
      if (f.count > 0) f.count--;
      return new Response(f.bytes, {
        headers: {
          'content-type': f.contentType,
          'content-length': String(f.bytes.length),
          'content-disposition': `attachment; filename="${f.name.split('/').at(-1)}"`,
        },
      });
    }

    if (m === 'GET' && (g = p.match(/^\/get\/([0-9a-f]{64})$/))) {
      const job = [...jobs.values()].find((j) => j.outputHash === g![1]);
      if (!job) throw new HttpError(404, 'file not found.');
      const base = `${url.protocol}//${url.host}`;
      const script = job.files
        .map((f) => `curl -sL ${base}/share/results/${f.hash}/${f.name} -o ${f.name.split('/').at(-1)}`)
        .join('\n');
      return new Response(`${script}\n`, { headers: { 'content-type': 'text/plain' } });
    }

    throw new HttpError(404, 'Page not found.');
  }

  function appSchema(): Record<string, unknown> {
    const panelKey = (p: FakePanel): string => `apps@${p.id}@${p.version}`;
    const checkbox = [
      { key: 'true', value: 'true' },
      { key: 'false', value: 'false' },
    ];
    const p = (o: Record<string, unknown>): Record<string, unknown> => ({
      visible: true,
      required: false,
      adminOnly: false,
      ...o,
    });
    return {
      id: appId,
      name: 'Genotype Imputation',
      version: appVersion,
      description: 'Fake Michigan Imputation Server 2 (minimac4) for tests.',
      website: 'https://imputationserver.readthedocs.io',
      submitButton: 'Start Imputation',
      s3Workspace: false,
      footer: '',
      params: [
        p({
          id: 'refpanel',
          description: 'Reference Panel',
          type: 'app_list',
          required: true,
          category: 'RefPanel',
          value: control.panels[0] ? panelKey(control.panels[0]) : '',
          values: control.panels.map((x) => ({ key: panelKey(x), value: x.label })),
        }),
        p({
          id: 'files',
          description: 'Input Files (VCF)',
          type: 'local_folder',
          source: 'upload',
          required: true,
          help: 'Multiple files can be selected by using the ctrl/cmd key.',
        }),
        p({
          id: 'build',
          description: 'Array Build',
          type: 'list',
          value: 'hg19',
          values: [
            { key: 'hg19', value: 'GRCh37/hg19' },
            { key: 'hg38', value: 'GRCh38/hg38' },
          ],
        }),
        p({
          id: 'r2Filter',
          description: 'rsq Filter',
          type: 'list',
          value: '0',
          values: [
            { key: '0', value: 'off' },
            { key: '0.001', value: '0.001' },
            { key: '0.1', value: '0.1' },
            { key: '0.2', value: '0.2' },
            { key: '0.3', value: '0.3' },
          ],
        }),
        p({
          id: 'phasing',
          description: 'Phasing',
          type: 'list',
          value: 'eagle',
          values: [
            { key: 'beagle', value: 'Beagle 5.4 (phased output)' },
            { key: 'eagle', value: 'Eagle v2.4 (phased output)' },
            { key: 'no_phasing', value: 'No phasing' },
          ],
        }),
        p({
          id: 'population',
          description: 'Allele Frequency Check',
          type: 'binded_list',
          bind: 'refpanel',
          value: 'off',
          values: control.panels.map((x) => ({
            key: panelKey(x),
            label: x.label,
            build: x.build,
            values: x.populations.map((pop) => ({ key: pop.id, value: pop.label })),
          })),
        }),
        p({
          id: 'mode',
          description: 'Mode',
          type: 'list',
          value: 'imputation',
          values: [
            { key: 'imputation', value: 'Quality Control & Imputation' },
            { key: 'qc_only', value: 'Quality Control Only' },
          ],
        }),
        p({ id: 'aesEncryption', description: 'AES 256 encryption', type: 'checkbox', value: 'false', values: checkbox }),
        p({
          id: 'meta',
          description: 'Generate Meta-imputation file',
          type: 'checkbox',
          value: 'false',
          values: checkbox,
        }),
        p({ id: 'job-name', description: 'Name', type: 'text', value: '' }),
        p({
          id: 'check1',
          description: 'I will not attempt to re-identify or contact research participants.',
          type: 'terms_checkbox',
        }),
        p({ id: 'check2', description: 'I will report any inadvertent data release.', type: 'terms_checkbox' }),
      ],
    };
  }

  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: options.port ?? 0,
    idleTimeout: 0, // let `hang` really hang
    async fetch(req) {
      const url = new URL(req.url);
      const h = req.headers;
      const rec: RecordedRequest = {
        method: req.method,
        path: url.pathname,
        query: Object.fromEntries(url.searchParams.entries()),
        headers: {},
        time: control.now(),
      };
      for (const k of ['x-auth-token', 'authorization', 'content-type', 'user-agent', 'accept'] as const) {
        const v = h.get(k);
        if (v !== null) rec.headers[k] = v;
      }
      const who = authenticate(req);
      if (who) rec.username = who.username;
      requests.push(rec);
      control.tick();

      const fault = matchFault(req.method, url.pathname);
      if (fault?.kind === 'hang') {
        return new Promise<Response>((resolve) => {
          const release = (): void => {
            hanging.delete(release);
            resolve(new Response('released', { status: 503 }));
          };
          hanging.add(release);
        });
      }
      if (fault?.kind === 'status500') {
        rec.status = 500;
        return err(500, 'Internal Server Error');
      }

      let res: Response;
      try {
        res = await route(req, url, rec);
      } catch (e) {
        if (e instanceof HttpError) {
          res = e.plain ? new Response(e.message, { status: e.status }) : err(e.status, e.message);
        } else {
          // Unexpected error: Cloudgene's submit returns 400 with a plain exception string.
          res = new Response(String(e), { status: url.pathname.startsWith('/api/v2/jobs/submit') ? 400 : 500 });
        }
      }
      rec.status = res.status;
      if (fault?.kind === 'malformedJson') {
        return new Response('{"id": "job-broken", "state": 4, "outputParams": [', {
          status: res.status,
          headers: { 'content-type': 'application/json' },
        });
      }
      return res;
    },
  });

  const port = server.port ?? 0;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    control,
    async stop() {
      for (const release of [...hanging]) release();
      await server.stop(true);
    },
  };
}
