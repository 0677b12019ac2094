// Runs the real `palisade` CLI in child processes with a temp config and data
// dir, for the system tests. Every gateway is started in its own process
// group and killed (group-wide) by cleanup(), so no worker outlives a test.

import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { HEALTHCHECK_DICT } from '../../src/config/defaults';
import { sharedDictFile } from '../../src/gateway/shared-dicts';
import { freePort } from '../helpers/ports';

export const ROOT = path.resolve(__dirname, '..', '..', '..');
export const ADMIN_PREFIX = '/apisix/admin';

export { freePort };

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Poll `check` until it returns a value other than undefined, or fail after `timeoutMs`. */
export async function waitFor<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined> | T | undefined) {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    await sleep(50);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`);
}

export interface HttpResult {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

export function request(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: unknown; timeoutMs?: number } = {},
): Promise<HttpResult> {
  const body = options.body === undefined ? undefined : JSON.stringify(options.body);
  const headers = { ...(body ? { 'content-type': 'application/json' } : {}), ...options.headers };
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: options.method ?? 'GET', headers, agent: false, timeout: options.timeoutMs ?? 5000 },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, headers: res.headers }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout: ${options.method ?? 'GET'} ${url}`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** An upstream answering `upstream:<path>`; `/slow?ms=N` answers after N ms. */
export async function startUpstream(): Promise<{ port: number; close: () => Promise<void>; hits: () => number }> {
  let hits = 0;
  const server = http.createServer((req, res) => {
    hits += 1;
    const url = new URL(req.url ?? '/', 'http://upstream');
    const reply = (): void => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`upstream:${url.pathname}`);
    };
    if (url.pathname === '/slow') setTimeout(reply, Number(url.searchParams.get('ms') ?? 1000));
    else reply();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    hits: () => hits,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface GatewayHome {
  dir: string;
  configFile: string;
  dataDir: string;
  proxyPort: number;
  adminPort: number;
  controlPort: number;
  /** The prometheus listener's port (plugin_attr.prometheus), unless `extra` configures plugin_attr itself. */
  metricsPort: number;
  proxyUrl: string;
  adminUrl: string;
  controlUrl: string;
}

export interface HomeOptions {
  workers?: number;
  drainTimeout?: string;
  adminKey?: string;
  backend?: string;
  /** Root of the package whose bin/palisade runs (default: this checkout). */
  root?: string;
  /**
   * Lines added at the end of config.yaml (top-level sections such as deployment:). A `plugin_attr:`
   * section here replaces the harness's own, which points the prometheus listener at `metricsPort`.
   */
  extra?: string[];
}

const temporaryDirs: string[] = [];
const gateways = new Set<Gateway>();

/** A temp directory with conf/config.yaml on free loopback ports. */
export async function makeHome(options: HomeOptions = {}): Promise<GatewayHome> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-system-'));
  temporaryDirs.push(dir);
  const proxyPort = await freePort();
  const adminPort = await freePort();
  const controlPort = await freePort();
  // Every gateway gets its own metrics port: on the default 9091 only the first would listen, the rest log errors.
  const metricsPort = await freePort();
  fs.mkdirSync(path.join(dir, 'conf'));
  const configFile = path.join(dir, 'conf', 'config.yaml');
  const home: GatewayHome = {
    dir,
    configFile,
    dataDir: path.join(dir, 'data'),
    proxyPort,
    adminPort,
    controlPort,
    metricsPort,
    proxyUrl: `http://127.0.0.1:${proxyPort}`,
    adminUrl: `http://127.0.0.1:${adminPort}${ADMIN_PREFIX}`,
    controlUrl: `http://127.0.0.1:${controlPort}`,
  };
  writeConfig(home, options);
  return home;
}

export function writeConfig(home: GatewayHome, options: HomeOptions = {}): void {
  const extra = options.extra ?? [];
  const ownPluginAttr = extra.some((line) => /^plugin_attr\s*:/.test(line));
  const lines = [
    'proxy:',
    `  listen: ["127.0.0.1:${home.proxyPort}"]`,
    `  drain_timeout: ${options.drainTimeout ?? '5s'}`,
    `workers: ${options.workers ?? 1}`,
    'admin:',
    `  listen: 127.0.0.1:${home.adminPort}`,
    ...(options.adminKey ? [`  keys: [{ key: ${options.adminKey}, role: admin }]`] : []),
    ...(options.backend ? ['native:', `  backend: ${options.backend}`] : []),
    'control:',
    `  listen: 127.0.0.1:${home.controlPort}`,
    'store:',
    '  type: embedded',
    '  data_dir: ./data',
    // refresh_interval short: a test that scrapes polls until new counts show (the default is 15 s).
    ...(ownPluginAttr
      ? []
      : [
          'plugin_attr:',
          '  prometheus:',
          `    export_addr: 127.0.0.1:${home.metricsPort}`,
          '    refresh_interval: 200ms',
        ]),
    ...extra,
    '',
  ];
  fs.writeFileSync(home.configFile, lines.join('\n'));
}

/** Environment for a child gateway: no PALISADE_* settings leak in from the test runner. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('PALISADE_') && !name.startsWith('NODE_TEST')) env[name] = value;
  }
  return { ...env, ...extra };
}

export interface Gateway {
  child: ChildProcess;
  home: GatewayHome;
  stdout(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Start `palisade start -c <home>/conf/config.yaml` and wait until the Admin API answers. */
export async function startGateway(
  home: GatewayHome,
  options: {
    env?: Record<string, string>;
    root?: string;
    waitMs?: number;
    /** What "started" means: proxy listening and Admin API answering (default), or only one of them. */
    waitFor?: 'proxy-and-admin' | 'proxy' | 'admin';
  } = {},
): Promise<Gateway> {
  const bin = path.join(options.root ?? ROOT, 'bin', 'palisade');
  // detached: a process group of its own, so cleanup (and the kill -9 test) reaches the workers too.
  const child = spawn(process.execPath, [bin, 'start', '-c', home.configFile], {
    cwd: home.dir,
    env: cleanEnv(options.env),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const gateway: Gateway = { child, home, stdout: () => stdout, stderr: () => stderr, exited };
  gateways.add(gateway);
  void exited.then(() => gateways.delete(gateway));

  let exitedEarly = false;
  void exited.then(() => (exitedEarly = true));
  try {
    await waitFor('the gateway to listen', options.waitMs ?? 20_000, async () => {
      if (exitedEarly) throw new Error('gateway exited');
      const status = readStatus(home);
      const wanted = options.waitFor ?? 'proxy-and-admin';
      if (!status || (wanted !== 'admin' && status.proxy.length === 0)) return undefined;
      if (wanted !== 'proxy') await request(`${home.adminUrl}/routes`, { timeoutMs: 1000 });
      return true;
    });
  } catch (err) {
    killGroup(child, 'SIGKILL');
    throw new Error(`${(err as Error).message}\n--- stdout\n${stdout}\n--- stderr\n${stderr}`);
  }
  return gateway;
}

export function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

export interface StatusFile {
  pid: number;
  role: string;
  proxy: string[];
  admin: string;
  backend: string;
  configVersion: number;
  workers: Array<{ pid: number; backend: string; appliedVersion: number }>;
  agent?: { pid: number; ready: boolean; healthChecks: boolean };
}

export function readStatus(home: GatewayHome): StatusFile | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(home.dataDir, 'status.json'), 'utf8')) as StatusFile;
  } catch {
    return undefined;
  }
}

export function readAdminKey(home: GatewayHome): string {
  return fs.readFileSync(path.join(home.dataDir, 'admin.key'), 'utf8').trim();
}

/** Run `palisade <args> -c <config>` to completion. */
export function cli(
  home: GatewayHome,
  args: string[],
  timeoutMs = 20_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'palisade'), ...args, '-c', home.configFile], {
      cwd: home.dir,
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`palisade ${args.join(' ')} timed out`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Stop a gateway with SIGTERM and wait for its exit. */
export async function stopGateway(gateway: Gateway, timeoutMs = 15_000): Promise<{ code: number | null }> {
  const { exitCode, signalCode } = gateway.child;
  if (exitCode !== null || signalCode !== null) {
    // It died on its own: whatever failed in the test, its log says why.
    process.stderr.write(
      `gateway exited before it was stopped (code ${exitCode}, signal ${signalCode}); its stderr ends:\n` +
        `${gateway.stderr().slice(-4000)}\n`,
    );
  }
  gateway.child.kill('SIGTERM');
  const timer = setTimeout(() => killGroup(gateway.child, 'SIGKILL'), timeoutMs);
  const result = await gateway.exited;
  clearTimeout(timer);
  return result;
}

/** Kill every gateway still running, remove the temp dirs and the shared dicts a killed gateway left. */
export async function cleanup(): Promise<void> {
  const running = [...gateways];
  for (const gateway of running) killGroup(gateway.child, 'SIGKILL');
  await Promise.all(running.map((gateway) => gateway.exited));
  for (const dir of temporaryDirs.splice(0)) {
    fs.rmSync(sharedDictFile(HEALTHCHECK_DICT, path.join(dir, 'data')), { force: true });
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export function adminHeaders(key: string): Record<string, string> {
  return { 'X-API-KEY': key };
}

/** PUT an upstream and a route to it through the Admin API. */
export async function putRoute(
  home: GatewayHome,
  key: string,
  id: string,
  uri: string,
  upstreamPort: number,
): Promise<HttpResult> {
  return request(`${home.adminUrl}/routes/${id}`, {
    method: 'PUT',
    headers: adminHeaders(key),
    body: { uri, upstream: { type: 'roundrobin', nodes: { [`127.0.0.1:${upstreamPort}`]: 1 } } },
  });
}
