// A real Redis for tests: Debian's redis-server (installed when missing) on a
// free loopback port with its files in a temp dir, no persistence; or three of
// them joined into a Redis Cluster (every slot covered, no replicas). Always
// killed when the test process exits.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { freePort } from './ports';

const START_TIMEOUT_MS = 15_000;
/** Redis Cluster's bus port is the client port + 10000; every server here keeps it free. */
const CLUSTER_BUS_OFFSET = 10_000;
const repoRoot = path.resolve(__dirname, '../../..');

function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).concat(['/usr/bin', '/usr/local/bin'])) {
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** The redis-server binary, installing Debian's redis-server when it is missing. */
export function redisBinary(name: 'redis-server' | 'redis-cli' = 'redis-server'): string {
  const found = findOnPath(name);
  if (found) return found;
  execFileSync('bash', [path.join(repoRoot, 'scripts/ensure-packages.sh'), 'redis-server', 'redis-tools'], {
    stdio: 'inherit',
  });
  const installed = findOnPath(name);
  if (!installed) throw new Error(`${name} is not installed and redis-server did not provide it`);
  return installed;
}

/** Send one inline command and read the reply's first chunk. */
async function command(port: number, line: string): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let reply = '';
    socket.setTimeout(1000, () => socket.destroy(new Error('timeout')));
    socket.once('error', reject);
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString();
      // A bulk reply ($<length>\r\n<body>\r\n) may come in several chunks.
      const bulk = /^\$(\d+)\r\n/.exec(reply);
      const complete = bulk === null ? reply.endsWith('\r\n') : reply.length >= bulk[0].length + Number(bulk[1]) + 2;
      if (complete) {
        socket.end();
        resolve(reply);
      }
    });
    socket.write(`${line}\r\n`);
  });
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export interface RedisServer {
  readonly host: string;
  readonly port: number;
  /** Kill the server and remove its directory. */
  close(): Promise<void>;
}

async function startServer(extraArgs: string[]): Promise<RedisServer> {
  const binary = redisBinary();
  const dir = mkdtempSync(path.join(tmpdir(), 'palisade-redis-'));
  const port = await freePort(CLUSTER_BUS_OFFSET);
  let output = '';
  const child = spawn(
    binary,
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      'no',
      '--protected-mode',
      'no',
      ...extraArgs,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  running.add(child);
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => running.delete(child));
  const close = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    try {
      if ((await command(port, 'PING')).startsWith('+PONG')) return { host: '127.0.0.1', port, close };
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await close();
  throw new Error(`redis-server did not start on port ${port}:\n${output}`);
}

/** One redis-server. */
export function startRedis(): Promise<RedisServer> {
  return startServer([]);
}

export interface RedisCluster {
  /** "127.0.0.1:port" of each node, as redis_cluster_nodes takes them. */
  readonly nodes: readonly string[];
  close(): Promise<void>;
}

/** Three redis-servers in cluster mode, joined with redis-cli --cluster create. */
export async function startRedisCluster(): Promise<RedisCluster> {
  const servers: RedisServer[] = [];
  const close = async (): Promise<void> => {
    await Promise.all(servers.map((server) => server.close()));
  };
  try {
    for (let i = 0; i < 3; i++) {
      servers.push(
        await startServer([
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          'nodes.conf',
          '--cluster-node-timeout',
          '2000',
        ]),
      );
    }
    const nodes = servers.map((server) => `127.0.0.1:${server.port}`);
    execFileSync(
      redisBinary('redis-cli'),
      ['--cluster', 'create', ...nodes, '--cluster-replicas', '0', '--cluster-yes'],
      {
        stdio: 'ignore',
        timeout: START_TIMEOUT_MS,
      },
    );
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (const server of servers) {
      for (;;) {
        const info = await command(server.port, 'CLUSTER INFO').catch(() => '');
        if (info.includes('cluster_state:ok')) break;
        if (Date.now() > deadline) throw new Error(`redis cluster node ${server.port} did not reach cluster_state:ok`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    return { nodes, close };
  } catch (error) {
    await close();
    throw error;
  }
}
