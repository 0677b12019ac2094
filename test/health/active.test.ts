// Active checks against real upstream servers: the thresholds hold exactly,
// tcp checks see a closed port, hanging nodes time out without piling up
// checks, concurrency bounds the probes, and update/stop behave.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as https from 'node:https';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { startActiveHealthChecks, type HealthChecker } from '../../src/health';
import { readNodeHealth } from '../../src/health/report';
import type { Upstream } from '../../src/schema/types';
import { availableBackends } from '../helpers/backends';
import { snapshot } from '../helpers/dataplane';
import { closedPort, startUpstream } from '../helpers/upstream';
import { openTestDict, waitUntil, type TestDict } from './support';

type Checks = NonNullable<Upstream['checks']>;

const FAST = 0.05; // seconds between checks

/** A TCP server that accepts and never answers, counting connections open at once (shared by `gauge`). */
interface Gauge {
  open: number;
  max: number;
  accepted: number;
}

async function startHangingServer(gauge: Gauge, port = 0): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    gauge.accepted++;
    gauge.open++;
    gauge.max = Math.max(gauge.max, gauge.open);
    sockets.add(socket);
    socket.on('error', () => {});
    socket.resume(); // read (and drop) so the client's close is seen
    socket.on('close', () => {
      gauge.open--;
      sockets.delete(socket);
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

function upstreamOf(id: string, ports: number[], checks: Checks): Upstream {
  const nodes: Record<string, number> = {};
  for (const port of ports) nodes[`127.0.0.1:${port}`] = 1;
  return { id, nodes, checks };
}

for (const backend of availableBackends()) {
  describe(`active health checks (${backend.name})`, () => {
    let testDict: TestDict;
    let checker: HealthChecker;

    before(() => {
      testDict = openTestDict(backend);
    });
    after(() => testDict.close());

    const health = (id: string, port: number) => readNodeHealth(testDict.dict, id, `127.0.0.1:${port}`);

    it('marks a node answering 500 unhealthy after exactly http_failures checks, healthy after successes', async () => {
      // Each check arrives after the previous one was counted, so the state seen on arrival is exact.
      const seen: Array<{ healthy: boolean; answered: number }> = [];
      let status = 500;
      let port = 0;
      const upstream = await startUpstream({
        handler: (req, res) => {
          if (req.url === '/health') seen.push({ healthy: health('thresholds', port).healthy, answered: status });
          res.writeHead(status, { 'content-length': 0 });
          res.end();
        },
      });
      port = upstream.port;
      checker = startActiveHealthChecks({ dict: testDict.dict });
      try {
        checker.update(
          snapshot({
            upstreams: [
              upstreamOf('thresholds', [port], {
                active: {
                  http_path: '/health',
                  healthy: { interval: FAST, successes: 3 },
                  unhealthy: { interval: FAST, http_failures: 4 },
                },
              }),
            ],
          }),
        );
        await waitUntil(() => seen.length >= 5, 'five checks');
        assert.deepEqual(
          seen.slice(0, 5).map((check) => check.healthy),
          [true, true, true, true, false],
          'unhealthy after the fourth 500',
        );
        status = 200;
        await waitUntil(() => health('thresholds', port).healthy, 'healthy again');
        const firstAnswered200 = () => seen.findIndex((check) => check.answered === 200);
        await waitUntil(() => firstAnswered200() >= 0 && seen.length >= firstAnswered200() + 4, 'four checks on 200');
        const first = firstAnswered200();
        assert.deepEqual(
          seen.slice(first, first + 4).map((check) => check.healthy),
          [false, false, false, true],
          'healthy after the third 200',
        );
        const report = checker.status();
        assert.equal(report.upstreams.length, 1);
        assert.equal(report.upstreams[0].id, 'thresholds');
        assert.equal(report.upstreams[0].nodes[0].healthy, true);
        assert.equal(typeof report.upstreams[0].nodes[0].lastCheck, 'number');
      } finally {
        await checker.stop();
        await upstream.close();
      }
    });

    it('sends http_path, the host override and req_headers to the port override', async () => {
      const upstream = await startUpstream();
      const nodePort = await closedPort();
      checker = startActiveHealthChecks({ dict: testDict.dict });
      try {
        checker.update(
          snapshot({
            upstreams: [
              upstreamOf('request', [nodePort], {
                active: {
                  http_path: '/status?full=1',
                  host: 'health.example',
                  port: upstream.port,
                  req_headers: ['User-Agent: palisade-check', 'X-Check: yes'],
                  healthy: { interval: FAST },
                },
              }),
            ],
          }),
        );
        await waitUntil(() => upstream.requests.length >= 1, 'a check request');
        const [request] = upstream.requests;
        assert.equal(request.method, 'GET');
        assert.equal(request.url, '/status?full=1');
        assert.equal(request.headers.host, `health.example:${upstream.port}`);
        assert.equal(request.headers['user-agent'], 'palisade-check');
        assert.equal(request.headers['x-check'], 'yes');
        await waitUntil(() => health('request', nodePort).lastCheck !== undefined, 'the check recorded');
        assert.equal(health('request', nodePort).healthy, true, 'state is kept under the node, not the check port');
      } finally {
        await checker.stop();
        await upstream.close();
      }
    });

    it('a tcp check marks a closed port unhealthy and a listening one healthy again', async () => {
      const gauge: Gauge = { open: 0, max: 0, accepted: 0 };
      const port = await closedPort();
      checker = startActiveHealthChecks({ dict: testDict.dict });
      let server: { close(): Promise<void> } | null = null;
      try {
        checker.update(
          snapshot({
            upstreams: [
              upstreamOf('tcp', [port], {
                active: {
                  type: 'tcp',
                  healthy: { interval: FAST, successes: 1 },
                  unhealthy: { interval: FAST, tcp_failures: 2 },
                },
              }),
            ],
          }),
        );
        await waitUntil(() => !health('tcp', port).healthy, 'closed port unhealthy');
        server = await startHangingServer(gauge, port);
        await waitUntil(() => health('tcp', port).healthy, 'listening port healthy');
        assert.ok(gauge.accepted >= 1);
      } finally {
        await checker.stop();
        await server?.close();
      }
    });

    it('counts timeouts on a node that never answers, one check at a time', async () => {
      const gauge: Gauge = { open: 0, max: 0, accepted: 0 };
      const server = await startHangingServer(gauge);
      checker = startActiveHealthChecks({ dict: testDict.dict });
      try {
        checker.update(
          snapshot({
            upstreams: [
              upstreamOf('hanging', [server.port], {
                active: {
                  timeout: 0.1,
                  healthy: { interval: FAST },
                  unhealthy: { interval: FAST, timeouts: 2 },
                },
              }),
            ],
          }),
        );
        await waitUntil(() => !health('hanging', server.port).healthy, 'hanging node unhealthy');
        assert.ok(gauge.accepted >= 2, `two timed-out checks, saw ${gauge.accepted}`);
        await waitUntil(() => gauge.accepted >= 4, 'checks go on while unhealthy');
        assert.equal(gauge.max, 1, 'never more than one check of a node at once');
      } finally {
        await checker.stop();
        await server.close();
      }
    });

    it('runs at most `concurrency` probes of an upstream at once', async () => {
      // Three nodes that never answer, probes of 100 ms, one at a time: the fourth probe
      // cannot start before three timeouts have passed (all at once it would start after one).
      const gauge: Gauge = { open: 0, max: 0, accepted: 0 };
      const servers = await Promise.all([1, 2, 3].map(() => startHangingServer(gauge)));
      checker = startActiveHealthChecks({ dict: testDict.dict });
      try {
        const started = Date.now();
        checker.update(
          snapshot({
            upstreams: [
              upstreamOf(
                'bounded',
                servers.map((server) => server.port),
                {
                  active: { timeout: 0.1, concurrency: 1, healthy: { interval: FAST }, unhealthy: { interval: FAST } },
                },
              ),
            ],
          }),
        );
        await waitUntil(() => gauge.accepted >= 4, 'four probes');
        const elapsed = Date.now() - started;
        assert.ok(elapsed >= 290, `the fourth probe started after ${elapsed} ms`);
      } finally {
        await checker.stop();
        await Promise.all(servers.map((server) => server.close()));
      }
    });

    it('stop() ends a hanging probe at once and no check follows', async () => {
      const gauge: Gauge = { open: 0, max: 0, accepted: 0 };
      const server = await startHangingServer(gauge);
      checker = startActiveHealthChecks({ dict: testDict.dict });
      try {
        checker.update(
          snapshot({
            upstreams: [
              upstreamOf('stopping', [server.port], { active: { timeout: 30, healthy: { interval: FAST } } }),
            ],
          }),
        );
        await waitUntil(() => gauge.open === 1, 'a probe in flight');
        const started = Date.now();
        await checker.stop();
        assert.ok(Date.now() - started < 1000, 'stop did not wait for the 30 s timeout');
        await waitUntil(() => gauge.open === 0, 'the probe connection closed');
        const accepted = gauge.accepted;
        await new Promise((resolve) => setTimeout(resolve, FAST * 1000 * 4));
        assert.equal(gauge.accepted, accepted, 'no check after stop');
      } finally {
        await checker.stop();
        await server.close();
      }
    });

    it('update() keeps unchanged upstreams, and forgets removed upstreams and nodes', async () => {
      const { dict } = testDict;
      const a = await closedPort();
      const b = await closedPort();
      const checks: Checks = { active: { type: 'tcp', healthy: { interval: FAST }, unhealthy: { interval: FAST } } };
      checker = startActiveHealthChecks({ dict });
      try {
        checker.update(
          snapshot({ upstreams: [upstreamOf('kept', [a], checks), upstreamOf('changed', [a, b], checks)] }),
        );
        await waitUntil(
          () => !health('kept', a).healthy && !health('changed', a).healthy && !health('changed', b).healthy,
          'all closed ports unhealthy',
        );
        checker.update(
          snapshot({
            upstreams: [{ ...upstreamOf('kept', [a], checks), update_time: 2 }, upstreamOf('changed', [a], checks)],
          }),
        );
        assert.equal(health('kept', a).healthy, false, 'a timestamp change keeps the state');
        assert.equal(health('changed', a).healthy, false, 'a kept node keeps its state');
        assert.equal(dict.get(`health/changed/127.0.0.1:${b}/state`), undefined, 'a removed node is forgotten');
        assert.deepEqual(
          checker.status().upstreams.map((upstream) => [upstream.id, upstream.nodes.length]),
          [
            ['kept', 1],
            ['changed', 1],
          ],
        );
        checker.update(snapshot({ upstreams: [] }));
        assert.equal(dict.get(`health/kept/127.0.0.1:${a}/state`), undefined, 'a removed upstream is forgotten');
        assert.deepEqual(checker.status(), { upstreams: [] });
      } finally {
        await checker.stop();
      }
    });
  });
}

/** A self-signed certificate for 127.0.0.1 made with the openssl command, or null when it is not installed. */
function selfSignedCertificate(directory: string): { cert: Buffer; key: Buffer } | null {
  const keyFile = path.join(directory, 'key.pem');
  const certFile = path.join(directory, 'cert.pem');
  const made = spawnSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost'].concat([
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ]),
    { stdio: 'ignore', timeout: 20000 },
  );
  if (made.status !== 0) return null;
  return { cert: readFileSync(certFile), key: readFileSync(keyFile) };
}

describe('active https checks', () => {
  const directory = mkdtempSync(path.join(tmpdir(), 'palisade-health-tls-'));
  const credentials = selfSignedCertificate(directory);
  const [backend] = availableBackends(['js']);
  let testDict: TestDict;
  let server: https.Server;
  let port = 0;
  let status = 200;
  const paths: string[] = [];

  before(async () => {
    testDict = openTestDict(backend);
    if (credentials === null) return;
    server = https.createServer(credentials, (req, res) => {
      paths.push(req.url ?? '');
      res.writeHead(status, { 'content-length': 0 });
      res.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as net.AddressInfo).port;
  });
  after(async () => {
    if (credentials !== null) await new Promise<void>((resolve) => server.close(() => resolve()));
    testDict.close();
    rmSync(directory, { recursive: true, force: true });
  });

  const checksFor = (verify: boolean): Checks => ({
    active: {
      type: 'https',
      http_path: '/tls-health',
      https_verify_certificate: verify,
      healthy: { interval: FAST, successes: 1 },
      unhealthy: { interval: FAST, http_failures: 1, tcp_failures: 1 },
    },
  });

  it(
    'checks over TLS without verifying when https_verify_certificate is false',
    { skip: credentials === null && 'no openssl' },
    async () => {
      const checker = startActiveHealthChecks({ dict: testDict.dict });
      try {
        status = 500;
        checker.update(snapshot({ upstreams: [upstreamOf('tls', [port], checksFor(false))] }));
        await waitUntil(() => !readNodeHealth(testDict.dict, 'tls', `127.0.0.1:${port}`).healthy, 'unhealthy on 500');
        status = 200;
        await waitUntil(() => readNodeHealth(testDict.dict, 'tls', `127.0.0.1:${port}`).healthy, 'healthy on 200');
        assert.ok(paths.includes('/tls-health'));
      } finally {
        await checker.stop();
      }
    },
  );

  it('fails a self-signed certificate when verifying', { skip: credentials === null && 'no openssl' }, async () => {
    const checker = startActiveHealthChecks({ dict: testDict.dict });
    try {
      status = 200;
      checker.update(snapshot({ upstreams: [upstreamOf('tls-verified', [port], checksFor(true))] }));
      await waitUntil(
        () => !readNodeHealth(testDict.dict, 'tls-verified', `127.0.0.1:${port}`).healthy,
        'unhealthy: the certificate is not trusted',
      );
    } finally {
      await checker.stop();
    }
  });
});
