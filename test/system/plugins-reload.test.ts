// Plugin hot reload under load, through the real CLI with 2 workers and a
// plugin_dir (issue 4, must-show 2):
//
// - a custom plugin file rewritten while keep-alive load runs, then
//   PUT /apisix/admin/plugins/reload: once the reload has answered, every
//   worker serves the new code, and the load saw no failed request (no socket
//   error on a fresh connection, no 5xx);
// - a plugin file added at runtime + reload: a route using it works, no restart;
// - a plugin file deleted + reload: its route answers 503
//   {"error_msg":"plugin <name> is not loaded"}, the workers stay up (same
//   pids) and the other routes keep answering.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import {
  adminHeaders,
  cleanup,
  makeHome,
  putRoute,
  readStatus,
  request,
  sleep,
  startGateway,
  startUpstream,
  stopGateway,
  waitFor,
  type GatewayHome,
} from './harness';
import { startLoad } from './load';

const WORKERS = 2;
const ADMIN_KEY = 'plugins-reload-admin-key-0001';
const LOAD_CONNECTIONS = 8;

after(async () => {
  await cleanup();
});

/** A custom plugin (CommonJS, as plugin_dir takes them) whose access phase answers `body`. */
function pluginSource(name: string, body: string): string {
  return `'use strict';
module.exports = {
  name: ${JSON.stringify(name)},
  version: '0.1',
  priority: 1000,
  schema: { type: 'object' },
  access(conf, ctx) {
    return ctx.exit(200, ${JSON.stringify(body)});
  },
};
`;
}

/** What 12 requests on fresh connections (so on both workers) got, as "status body" lines. */
async function answers(home: GatewayHome, uri: string): Promise<Set<string>> {
  const results = await Promise.all(Array.from({ length: 12 }, () => request(`${home.proxyUrl}${uri}`)));
  return new Set(results.map((r) => `${r.status} ${r.body.trim()}`));
}

async function servedAs(home: GatewayHome, uri: string, expected: string): Promise<void> {
  let seen = new Set<string>();
  await waitFor(`${uri} to answer "${expected}" on every worker`, 10_000, async () => {
    seen = await answers(home, uri);
    return seen.size === 1 && seen.has(expected) ? true : undefined;
  }).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}; last seen: ${[...seen].join(' | ')}`);
  });
}

interface VersionedLoad {
  /** Answers by "status body". */
  answers: Map<string, number>;
  /** v1 answers to requests sent after `reloadedAt`: must stay empty. */
  staleAfterReload: number;
  /** Socket errors on a fresh connection, and errors after reconnecting: failed requests. */
  failures: string[];
  reconnects: number;
}

/**
 * Keep-alive load on `url` (like ./load, reopening a connection the server
 * closed, as wrk does) that also keeps each answer's body, so the switch from
 * v1 to v2 is seen from the client side: no request sent after the reload
 * answered may get v1.
 */
function startVersionedLoad(url: string, connections: number, reloadedAt: () => number | undefined) {
  const result: VersionedLoad = { answers: new Map(), staleAfterReload: 0, failures: [], reconnects: 0 };
  let running = true;
  const get = (agent: http.Agent): Promise<string> =>
    new Promise((resolve, reject) => {
      const req = http.get(url, { agent, timeout: 10_000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve(`${res.statusCode ?? 0} ${body.trim()}`));
        res.on('error', (err) => reject(Object.assign(err, { reused: req.reusedSocket })));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (err) => reject(Object.assign(err, { reused: req.reusedSocket })));
    });
  const record = (answer: string, sentAt: number): void => {
    result.answers.set(answer, (result.answers.get(answer) ?? 0) + 1);
    const reloaded = reloadedAt();
    if (reloaded !== undefined && sentAt > reloaded && answer === '200 v1') result.staleAfterReload += 1;
  };
  const loop = async (): Promise<void> => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      while (running) {
        const sentAt = performance.now();
        try {
          record(await get(agent), sentAt);
        } catch (err) {
          if ((err as { reused?: boolean }).reused !== true) {
            result.failures.push((err as Error).message);
            continue;
          }
          result.reconnects += 1;
          const again = performance.now();
          try {
            record(await get(agent), again);
          } catch (second) {
            result.failures.push(`after reconnect: ${(second as Error).message}`);
          }
        }
      }
    } finally {
      agent.destroy();
    }
  };
  const loops = Array.from({ length: connections }, () => loop());
  return {
    answered: () => [...result.answers.values()].reduce((sum, n) => sum + n, 0),
    async stop(): Promise<VersionedLoad> {
      running = false;
      await Promise.all(loops);
      return result;
    },
  };
}

function workerPids(home: GatewayHome): number[] {
  return (readStatus(home)?.workers ?? []).map((worker) => worker.pid).sort((a, b) => a - b);
}

describe('plugin hot reload under load (system)', { timeout: 120_000 }, () => {
  test('changed, added and removed plugin files, with zero failed requests during the load', async (t) => {
    const home = await makeHome({ workers: WORKERS, adminKey: ADMIN_KEY, extra: ['plugin_dir: ./plugins'] });
    const pluginDir = path.join(home.dir, 'plugins');
    fs.mkdirSync(pluginDir);
    fs.writeFileSync(path.join(pluginDir, 'hello.js'), pluginSource('hello', 'v1'));
    const upstream = await startUpstream();
    t.after(() => upstream.close());
    const admin = (method: string, urlPath: string, body?: unknown) =>
      request(`${home.adminUrl}${urlPath}`, { method, headers: adminHeaders(ADMIN_KEY), body, timeoutMs: 15_000 });
    const reload = async (): Promise<void> => {
      const answer = await admin('PUT', '/plugins/reload');
      assert.equal(answer.status, 200, answer.body);
    };
    const nodes = { [`127.0.0.1:${upstream.port}`]: 1 };

    const gateway = await startGateway(home);
    try {
      await waitFor('every worker to listen', 30_000, () => (workerPids(home).length === WORKERS ? true : undefined));
      const pids = workerPids(home);
      const hello = await admin('PUT', '/routes/hello', { uri: '/hello', plugins: { hello: {} }, upstream: { nodes } });
      assert.ok(hello.status < 300, hello.body);
      assert.ok((await putRoute(home, ADMIN_KEY, 'plain', '/plain', upstream.port)).status < 300);
      await servedAs(home, '/hello', '200 v1');
      await servedAs(home, '/plain', '200 upstream:/plain');

      // Changed during load: once the reload answered, only v2; no request failed.
      let reloadedAt: number | undefined;
      const load = startVersionedLoad(`${home.proxyUrl}/hello`, LOAD_CONNECTIONS, () => reloadedAt);
      const plainLoad = startLoad(`${home.proxyUrl}/plain`, { connections: 2 });
      let result: VersionedLoad;
      let plainResult;
      try {
        await sleep(1000);
        fs.writeFileSync(path.join(pluginDir, 'hello.js'), pluginSource('hello', 'v2'));
        await reload();
        reloadedAt = performance.now();
        const atReload = load.answered();
        assert.deepEqual(await answers(home, '/hello'), new Set(['200 v2']));
        await sleep(1000);
        assert.ok(load.answered() > atReload, 'the load kept being answered after the reload');
      } finally {
        result = await load.stop();
        plainResult = await plainLoad.stop();
      }
      assert.deepEqual(result.failures, [], 'failed requests on /hello');
      assert.deepEqual([...result.answers.keys()].sort(), ['200 v1', '200 v2'], JSON.stringify([...result.answers]));
      assert.equal(result.staleAfterReload, 0, 'v1 answered to a request sent after the reload answered');
      assert.ok((result.answers.get('200 v1') ?? 0) > 50 && (result.answers.get('200 v2') ?? 0) > 50);
      assert.deepEqual(plainResult.socketErrors, [], 'failed requests on /plain');
      assert.deepEqual(plainResult.serverErrors, [], '5xx on /plain');

      // Added at runtime: unknown before the reload, working after it, no restart.
      fs.writeFileSync(path.join(pluginDir, 'greet.js'), pluginSource('greet', 'greetings'));
      const early = await admin('PUT', '/routes/greet', { uri: '/greet', plugins: { greet: {} }, upstream: { nodes } });
      assert.equal(early.status, 400, early.body);
      assert.deepEqual(JSON.parse(early.body), { error_msg: 'unknown plugin [greet]' });
      await reload();
      const late = await admin('PUT', '/routes/greet', { uri: '/greet', plugins: { greet: {} }, upstream: { nodes } });
      assert.ok(late.status < 300, late.body);
      await servedAs(home, '/greet', '200 greetings');

      // Removed: its route gets the clear 503; the workers live on and the other routes answer.
      fs.rmSync(path.join(pluginDir, 'hello.js'));
      await reload();
      assert.deepEqual(await answers(home, '/hello'), new Set(['503 {"error_msg":"plugin hello is not loaded"}']));
      assert.deepEqual(await answers(home, '/greet'), new Set(['200 greetings']));
      assert.deepEqual(await answers(home, '/plain'), new Set(['200 upstream:/plain']));
      const list = JSON.parse((await admin('GET', '/plugins/list')).body) as string[];
      assert.ok(list.includes('greet') && !list.includes('hello'), JSON.stringify(list));
      assert.deepEqual(workerPids(home), pids, 'no worker was restarted');
    } finally {
      await stopGateway(gateway);
    }
  });
});
