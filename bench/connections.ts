// `npm run bench:connections`: what an idle keep-alive client connection costs
// a worker in memory. An edge gateway holds many more idle connections than
// busy ones, so this is most of its footprint.
//
// Palisade (`palisade start`, one worker) in front of a small node:http
// upstream. BENCH_CONNECTIONS (5,000) connections each send one request, read
// the answer and stay open; the figure is the worker's RSS growth divided by
// the connection count, after a warm-up of 200 connections and a pause for
// the heap to settle. Run it twice: RSS moves by a few hundred KiB between runs.
//
//   npm run bench:connections                      this checkout
//   npm run bench:connections -- /path/to/other    another built checkout's gateway (same method)

import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { killAllChildrenNow, stopAllChildren } from './lib/children';
import { freePort } from './lib/net';
import { startPalisade } from './lib/palisade';
import { machineInfo, writeReport } from './lib/report';
import { positiveInt } from './lib/settings';

const CONNECTIONS = positiveInt(process.env.BENCH_CONNECTIONS, 5000);
const WARMUP_CONNECTIONS = 200;
/** Connections opened at once while filling up. */
const BATCH = 100;
const ANSWER_TIMEOUT_MS = 10_000;

function rssKiB(pid: number): number {
  const match = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (match === null) throw new Error(`no VmRSS for process ${pid}`);
  return Number(match[1]);
}

/** Open a connection, send one request and resolve once the answer's first bytes are in; the socket stays open. */
function idleConnection(port: number, sockets: net.Socket[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write('GET /hello HTTP/1.1\r\nHost: bench\r\n\r\n'));
    sockets.push(socket);
    const timer = setTimeout(() => reject(new Error('no answer within 10 s')), ANSWER_TIMEOUT_MS);
    socket.once('data', (chunk: Buffer) => {
      clearTimeout(timer);
      if (chunk.toString('latin1', 0, 12) !== 'HTTP/1.1 200')
        reject(new Error(`answer: ${chunk.toString('latin1', 0, 40)}`));
      else resolve();
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

async function main(): Promise<void> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-bench-connections-'));
  const upstream = http.createServer((_req, res) => res.end('hello'));
  const sockets: net.Socket[] = [];
  try {
    const upstreamPort = await freePort();
    await new Promise<void>((resolve) => upstream.listen(upstreamPort, '127.0.0.1', resolve));
    const proxyPort = await freePort();
    const root = process.argv[2] === undefined ? undefined : path.resolve(process.argv[2]);
    const gateway = await startPalisade(tmp, proxyPort, upstreamPort, { root });
    const status = JSON.parse(fs.readFileSync(path.join(tmp, 'palisade', 'data', 'status.json'), 'utf8')) as {
      workers: Array<{ pid: number }>;
    };
    const worker = status.workers[0].pid;
    console.log(
      `bench:connections: palisade (backend ${gateway.backend}), worker ${worker}, ${CONNECTIONS} connections`,
    );

    for (let i = 0; i < WARMUP_CONNECTIONS; i++) await idleConnection(proxyPort, sockets);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const before = rssKiB(worker);
    for (let opened = 0; opened < CONNECTIONS; opened += BATCH) {
      const batch = Math.min(BATCH, CONNECTIONS - opened);
      await Promise.all(Array.from({ length: batch }, () => idleConnection(proxyPort, sockets)));
    }
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const after = rssKiB(worker);
    const perConnection = ((after - before) * 1024) / CONNECTIONS;
    console.log(
      `\n${CONNECTIONS} idle keep-alive connections: worker RSS ${before} -> ${after} KiB, ` +
        `${Math.round(perConnection)} bytes per connection`,
    );
    const file = writeReport('connections', {
      kind: 'bench:connections',
      date: new Date().toISOString(),
      machine: machineInfo(),
      connections: CONNECTIONS,
      checkout: root ?? path.resolve(__dirname, '..', '..'),
      backend: gateway.backend,
      rssBeforeKiB: before,
      rssAfterKiB: after,
      bytesPerConnection: perConnection,
    });
    console.log(`report: ${file}`);
  } finally {
    for (const socket of sockets) socket.destroy();
    await stopAllChildren();
    upstream.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

process.on('SIGINT', () => {
  killAllChildrenNow();
  process.exit(130);
});

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  killAllChildrenNow();
  process.exit(1);
});
