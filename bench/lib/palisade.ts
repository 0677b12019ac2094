// Palisade started the way a user starts it: the real CLI, a temp config and
// data dir, one worker, one route added through the Admin API; and writes
// through that Admin API, one at a time or many over keep-alive connections.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { Pool } from 'undici';
import { startChild, type Child } from './children';
import { freePort, httpRequest, waitForHttp } from './net';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const ADMIN_KEY = 'bench0000000000000000000000000000';

export interface PalisadeTarget {
  child: Child;
  proxyPort: number;
  backend: string;
  /** Admin API base URL (…/apisix/admin) and the headers that authorize it. */
  admin: string;
  adminHeaders: Record<string, string>;
}

export interface PalisadeOptions {
  /** More config.yaml lines (top-level keys), e.g. `plugin_attr:` for the metrics listener. */
  extraConfig?: string[];
  /** The store's data dir (default `<dir>/palisade/data`), e.g. on tmpfs when Admin API writes should not wait on fsync. */
  dataDir?: string;
  /** The checkout whose `bin/palisade` runs (default this one), to measure another build. */
  root?: string;
}

export async function startPalisade(
  dir: string,
  proxyPort: number,
  upstreamPort: number,
  options: PalisadeOptions = {},
): Promise<PalisadeTarget> {
  const home = path.join(dir, 'palisade');
  fs.mkdirSync(path.join(home, 'conf'), { recursive: true });
  const adminPort = await freePort();
  const configFile = path.join(home, 'conf', 'config.yaml');
  fs.writeFileSync(
    configFile,
    [
      'proxy:',
      `  listen: ["127.0.0.1:${proxyPort}"]`,
      'workers: 1',
      'admin:',
      `  listen: 127.0.0.1:${adminPort}`,
      `  keys: [{ key: ${ADMIN_KEY}, role: admin }]`,
      'store:',
      `  data_dir: ${JSON.stringify(options.dataDir ?? './data')}`,
      'log:',
      '  level: warn',
      ...(options.extraConfig ?? []),
      '',
    ].join('\n'),
  );
  const env = { ...process.env };
  delete env.PALISADE_CONFIG;
  delete env.PALISADE_LISTEN;
  delete env.PALISADE_ADMIN_LISTEN;
  delete env.PALISADE_ADMIN_KEY;
  delete env.PALISADE_DATA_DIR;
  delete env.PALISADE_WORKERS;
  const child = startChild(
    'palisade',
    process.execPath,
    [path.join(options.root ?? ROOT, 'bin', 'palisade'), 'start', '-c', configFile],
    {
      env,
      cwd: home,
    },
  );

  const admin = `http://127.0.0.1:${adminPort}/apisix/admin`;
  const headers = { 'X-API-KEY': ADMIN_KEY, 'Content-Type': 'application/json' };
  try {
    await waitForHttp(`${admin}/routes`, 20_000);
    const route = {
      uri: '/hello',
      upstream: { type: 'roundrobin', nodes: { [`127.0.0.1:${upstreamPort}`]: 1 } },
    };
    const put = await httpRequest(`${admin}/routes/1`, { method: 'PUT', headers, body: JSON.stringify(route) });
    if (put.status !== 200 && put.status !== 201) throw new Error(`PUT route: ${put.status} ${put.body}`);
    await waitForHttp(`http://127.0.0.1:${proxyPort}/hello`, 10_000, 200);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${child.output()}`);
  }
  const statusFile = path.join(path.resolve(home, options.dataDir ?? 'data'), 'status.json');
  let backend = 'unknown';
  try {
    backend = (JSON.parse(fs.readFileSync(statusFile, 'utf8')) as { backend?: string }).backend ?? backend;
  } catch {
    // the status file is informational here
  }
  return { child, proxyPort, backend, admin, adminHeaders: headers };
}

/** One Admin API write: `what` under /apisix/admin (e.g. `routes/p1`) and its JSON body. */
export interface AdminWrite {
  what: string;
  body: unknown;
}

function checkPut(what: string, status: number, body: string): void {
  if (status !== 200 && status !== 201) throw new Error(`PUT ${what}: ${status} ${body}`);
}

/** PUT one item through the Admin API. */
export async function adminPut(gateway: PalisadeTarget, what: string, body: unknown): Promise<void> {
  const put = await httpRequest(`${gateway.admin}/${what}`, {
    method: 'PUT',
    headers: gateway.adminHeaders,
    body: JSON.stringify(body),
  });
  checkPut(what, put.status, put.body);
}

/**
 * PUT every write the way a loading script would: `connections` keep-alive connections, one request in flight on
 * each, so the gateway has the next write read and checked while the store records one. The last write goes alone
 * after all the others have answered, so the store records it last: a worker applies changes in store order, so
 * once it serves the last write it serves every one.
 */
export async function adminPutAll(gateway: PalisadeTarget, writes: AdminWrite[], connections = 8): Promise<void> {
  if (writes.length === 0) return;
  const admin = new URL(gateway.admin);
  const pool = new Pool(admin.origin, { connections, pipelining: 1 });
  const put = async ({ what, body }: AdminWrite): Promise<void> => {
    const response = await pool.request({
      path: `${admin.pathname}/${what}`,
      method: 'PUT',
      headers: gateway.adminHeaders,
      body: JSON.stringify(body),
    });
    checkPut(what, response.statusCode, await response.body.text());
  };
  const concurrent = writes.length - 1;
  let next = 0;
  const writer = async (): Promise<void> => {
    while (next < concurrent) {
      try {
        await put(writes[next++]);
      } catch (err) {
        next = concurrent; // the other writers stop too
        throw err;
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(connections, concurrent) }, () => writer()));
    await put(writes[concurrent]);
  } finally {
    await pool.close();
  }
}
