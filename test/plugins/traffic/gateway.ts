// A DataPlane for end-to-end plugin tests: the built-in plugins as the loader
// finds them, the shared dictionaries the traffic plugins use (opened fresh
// in a temp dir), routes in a snapshot, and a small HTTP helper.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { request as undiciRequest } from 'undici';

import { DataPlane } from '../../../src/dataplane/server';
import { loadBackend } from '../../../src/native';
import { openSharedDict, type SharedDict } from '../../../src/native/shdict';
import { PluginLoader } from '../../../src/plugins/loader';
import type { Consumer, Route, Upstream } from '../../../src/schema/types';
import type { ConfigSnapshot } from '../../../src/store/types';

/** The dictionaries the security and traffic plugins use. */
export const PLUGIN_DICTS = ['plugin-limit-count', 'plugin-limit-req', 'plugin-limit-conn', 'plugin-api-breaker'];

export interface GatewayConfig {
  routes: Route[];
  upstreams?: Upstream[];
  consumers?: Consumer[];
  pluginMetadata?: { id: string; [field: string]: unknown }[];
}

export interface PluginGateway {
  readonly port: number;
  readonly dicts: ReadonlyMap<string, SharedDict>;
  apply(config: GatewayConfig): void;
  close(): Promise<void>;
}

let versions = 0;

function snapshotOf(config: GatewayConfig): ConfigSnapshot {
  return {
    version: ++versions,
    routes: config.routes,
    services: [],
    upstreams: config.upstreams ?? [],
    consumers: config.consumers ?? [],
    consumer_groups: [],
    global_rules: [],
    plugin_configs: [],
    plugin_metadata: (config.pluginMetadata ?? []) as ConfigSnapshot['plugin_metadata'],
    ssls: [],
  };
}

export async function startPluginGateway(config: GatewayConfig): Promise<PluginGateway> {
  const backend = loadBackend('js');
  const dir = mkdtempSync(path.join(tmpdir(), 'palisade-plugin-gw-'));
  const dicts = new Map<string, SharedDict>();
  for (const name of PLUGIN_DICTS) {
    dicts.set(name, openSharedDict(backend, name, 1 << 20, { path: path.join(dir, name), fresh: true }));
  }
  const loader = new PluginLoader();
  loader.load();
  const dataPlane = new DataPlane(backend, {
    listen: [{ host: '127.0.0.1', port: 0 }],
    plugins: {
      get registry() {
        return loader.registry;
      },
      env: { dict: (name: string) => dicts.get(name) ?? missing(name) },
    },
    dicts,
  });
  dataPlane.applyConfig(snapshotOf(config));
  const [bound] = await dataPlane.listen();
  return {
    port: bound.port,
    dicts,
    apply: (next) => dataPlane.applyConfig(snapshotOf(next)),
    async close() {
      await dataPlane.close(1000);
      for (const dict of dicts.values()) dict.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function missing(name: string): never {
  throw new Error(`no such shared dictionary: ${name}`);
}

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: unknown;
}

/** One request to the gateway; the body read whole, JSON parsed when it is JSON. */
export async function call(
  port: number,
  pathAndQuery: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Reply> {
  const response = await undiciRequest(`http://127.0.0.1:${port}${pathAndQuery}`, {
    method: (options.method ?? 'GET') as 'GET',
    headers: options.headers,
    body: options.body,
    headersTimeout: 10_000,
    bodyTimeout: 10_000,
  });
  const text = await response.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.statusCode, headers: response.headers, text, json };
}
