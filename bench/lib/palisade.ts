// Palisade started the way a user starts it: the real CLI, a temp config and
// data dir, one worker, one route added through the Admin API.

import * as fs from 'node:fs';
import * as path from 'node:path';
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
      '  data_dir: ./data',
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
    [path.join(ROOT, 'bin', 'palisade'), 'start', '-c', configFile],
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
  const statusFile = path.join(home, 'data', 'status.json');
  let backend = 'unknown';
  try {
    backend = (JSON.parse(fs.readFileSync(statusFile, 'utf8')) as { backend?: string }).backend ?? backend;
  } catch {
    // the status file is informational here
  }
  return { child, proxyPort, backend, admin, adminHeaders: headers };
}
