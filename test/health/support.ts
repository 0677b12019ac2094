// What the health tests share: a fresh shared dictionary in a temp directory,
// a DataPlane that reads health from it, an upstream whose answer can be
// switched, and polling with a bound instead of sleeps that guess timing.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { DataPlane } from '../../src/dataplane/server';
import type { NativeBackend } from '../../src/native';
import { openSharedDict, type SharedDict } from '../../src/native/shdict';
import { snapshot, type TestConfig } from '../helpers/dataplane';
import { rawRequest } from '../helpers/http-client';
import { startUpstream, type TestUpstream } from '../helpers/upstream';

export interface TestDict {
  readonly dict: SharedDict;
  /** The dictionary's file, for other processes to open. */
  readonly file: string;
  close(): void;
}

export function openTestDict(backend: NativeBackend): TestDict {
  const directory = mkdtempSync(path.join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'palisade-health-test-'));
  const file = path.join(directory, 'dict');
  const dict = openSharedDict(backend, 'health', 1 << 20, { path: file, fresh: true });
  return {
    dict,
    file,
    close: () => {
      dict.close();
      rmSync(directory, { recursive: true, force: true });
    },
  };
}

/** Poll `condition` every 10 ms until it holds; fail with `what` after `timeoutMs`. */
export async function waitUntil(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export interface HealthDataPlane {
  readonly dataPlane: DataPlane;
  readonly port: number;
  close(): Promise<void>;
}

export async function startHealthDataPlane(
  backend: NativeBackend,
  dict: SharedDict,
  config: TestConfig,
): Promise<HealthDataPlane> {
  const dataPlane = new DataPlane(backend, { listen: [{ host: '127.0.0.1', port: 0 }], sharedDict: dict });
  dataPlane.applyConfig(snapshot(config));
  const [bound] = await dataPlane.listen();
  return { dataPlane, port: bound.port, close: () => dataPlane.close(1000) };
}

/** An upstream answering `status` (changeable) with its name as the body; health checks hit it too. */
export class SwitchableUpstream {
  status: number;
  readonly name: string;
  upstream: TestUpstream | null = null;

  constructor(name: string, status: number) {
    this.name = name;
    this.status = status;
  }

  get port(): number {
    return this.upstream!.port;
  }

  /** Requests to `/health` so far. */
  checks(): number {
    return this.upstream!.requests.filter((request) => request.url === '/health').length;
  }

  /** Requests other than checks so far. */
  proxied(): number {
    return this.upstream!.requests.length - this.checks();
  }

  answer(res: ServerResponse): void {
    res.writeHead(this.status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(this.name) });
    res.end(this.name);
  }

  close(): Promise<void> {
    return this.upstream!.close();
  }
}

export async function startSwitchableUpstream(name: string, status = 200): Promise<SwitchableUpstream> {
  const switchable = new SwitchableUpstream(name, status);
  switchable.upstream = await startUpstream({ name, handler: (_req, res) => switchable.answer(res) });
  return switchable;
}

/** GET `uri` through the gateway on a fresh connection; the status and body text. */
export async function get(port: number, uri: string): Promise<{ status: number; body: string }> {
  const res = await rawRequest(port, `GET ${uri} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n`);
  return { status: res.status, body: res.body.toString() };
}
