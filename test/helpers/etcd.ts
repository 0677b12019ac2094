// A real etcd for tests: started on free loopback ports with its data in a
// temp dir, stoppable (SIGKILL) and restartable on the same dir and ports, and
// always killed when the test process exits. Also a TCP proxy in front of it
// that a test can cut, to make a store lose etcd while etcd keeps running.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { freePort } from './ports';

const START_TIMEOUT_MS = 15_000;
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

/** The etcd binary, installing Debian's etcd-server when it is missing. */
export function etcdBinary(): string {
  const found = findOnPath('etcd');
  if (found) return found;
  execFileSync('bash', [path.join(repoRoot, 'scripts/ensure-packages.sh'), 'etcd-server'], { stdio: 'inherit' });
  const installed = findOnPath('etcd');
  if (!installed) throw new Error('etcd is not installed and etcd-server did not provide it');
  return installed;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export interface EtcdServer {
  /** Client URL, e.g. http://127.0.0.1:40123. */
  readonly url: string;
  readonly clientPort: number;
  readonly dataDir: string;
  /** Kill etcd (SIGKILL) and wait for it to exit. */
  kill(): Promise<void>;
  /** Start etcd again on the same data dir and ports. */
  start(): Promise<void>;
  /** Freeze etcd (SIGSTOP): its connections stay open and nothing answers, as with a hung server. */
  pause(): void;
  /** Let a paused etcd run again (SIGCONT). */
  resume(): void;
  /** Kill etcd and remove its data dir. */
  close(): Promise<void>;
}

export async function startEtcd(): Promise<EtcdServer> {
  const binary = etcdBinary();
  const baseDir = mkdtempSync(path.join(tmpdir(), 'palisade-etcd-'));
  const dataDir = path.join(baseDir, 'data');
  const clientPort = await freePort();
  const peerPort = await freePort();
  const url = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  let child: ChildProcess | undefined;

  const start = async (): Promise<void> => {
    if (child) throw new Error('etcd is already running');
    let output = '';
    const spawned = spawn(
      binary,
      [
        '--name=palisade-test',
        `--data-dir=${dataDir}`,
        `--listen-client-urls=${url}`,
        `--advertise-client-urls=${url}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=palisade-test=${peerUrl}`,
        '--logger=zap',
        '--log-level=warn',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    child = spawned;
    running.add(spawned);
    spawned.stderr?.on('data', (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-4000);
    });
    spawned.once('exit', () => {
      running.delete(spawned);
      if (child === spawned) child = undefined;
    });
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (spawned.exitCode !== null || spawned.signalCode !== null) {
        throw new Error(`etcd exited during start-up:\n${output}`);
      }
      try {
        const response = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) });
        const body = (await response.json()) as { health?: string };
        if (body.health === 'true') return;
      } catch {
        // not listening yet
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    spawned.kill('SIGKILL');
    throw new Error(`etcd did not become healthy within ${START_TIMEOUT_MS} ms:\n${output}`);
  };

  const kill = async (): Promise<void> => {
    const current = child;
    if (!current) return;
    const exited = new Promise<void>((resolve) => current.once('exit', () => resolve()));
    current.kill('SIGKILL');
    await exited;
  };

  const signal = (name: NodeJS.Signals): void => {
    if (!child) throw new Error('etcd is not running');
    child.kill(name);
  };

  await start();
  return {
    url,
    clientPort,
    dataDir,
    kill,
    start,
    pause: () => signal('SIGSTOP'),
    resume: () => signal('SIGCONT'),
    async close() {
      child?.kill('SIGCONT'); // a stopped process takes SIGKILL too, but let it go cleanly either way
      await kill();
      rmSync(baseDir, { recursive: true, force: true });
    },
  };
}

export interface TcpProxy {
  readonly port: number;
  readonly url: string;
  /** Drop every open connection and refuse new ones until `restore()`. */
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

/** A loopback TCP proxy to `targetPort` whose connections a test can cut. */
export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>();
  let refusing = false;
  const server = net.createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    cut() {
      refusing = true;
      for (const socket of sockets) socket.destroy();
      sockets.clear();
    },
    restore() {
      refusing = false;
    },
    async close() {
      refusing = true;
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Poll `check` until it returns true, or fail after `timeoutMs`. */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
