// Shared set-up for the Admin API tests: an AdminServer on an ephemeral port
// over an embedded store in a temp dir, and a small JSON client.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AdminServer, type AdminOptions } from '../../src/admin/server';
import type { PluginCatalog } from '../../src/schema/catalog';
import { createEmbeddedStore } from '../../src/store/index';
import type { ConfigStore } from '../../src/store/types';

export const ADMIN_KEY = 'test-admin-key-0123456789';
export const VIEWER_KEY = 'test-viewer-key-0123456789';

export interface Harness {
  base: string;
  store: ConfigStore;
  dir: string;
  call(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Reply>;
  close(): Promise<void>;
}

export interface Reply {
  status: number;
  headers: Headers;
  text: string;
  json: Record<string, unknown>;
}

export async function startAdmin(options: Partial<AdminOptions> = {}): Promise<Harness> {
  const dir = mkdtempSync(path.join(tmpdir(), 'palisade-admin-'));
  const store = options.store ?? createEmbeddedStore(dir);
  if (!options.store) await store.open();
  const server = new AdminServer({
    host: '127.0.0.1',
    port: 0,
    store,
    keys: [
      { key: ADMIN_KEY, role: 'admin' },
      { key: VIEWER_KEY, role: 'viewer' },
    ],
    ...options,
  });
  const { port } = await server.listen();
  const base = `http://127.0.0.1:${port}/apisix/admin`;
  return {
    base,
    store,
    dir,
    async call(method, urlPath, body, headers = { 'X-API-KEY': ADMIN_KEY }) {
      const response = await fetch(base + urlPath, {
        method,
        headers,
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
        signal: AbortSignal.timeout(5000),
      });
      const text = await response.text();
      let json: Record<string, unknown> = {};
      try {
        json = text ? (JSON.parse(text) as Record<string, unknown>) : {};
      } catch {
        // not JSON; tests look at text
      }
      return { status: response.status, headers: response.headers, text, json };
    },
    async close() {
      await server.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A catalog with limit-req (rate > 0 required) and key-auth, for plugin validation tests. */
export const testCatalog: PluginCatalog = {
  has: (name) => name === 'limit-req' || name === 'key-auth' || name === 'prometheus',
  validate(name, conf, kind) {
    const c = conf as Record<string, unknown>;
    if (name === 'limit-req' && kind !== 'metadata' && !(typeof c.rate === 'number' && c.rate > 0)) {
      return 'property "rate" is required';
    }
    if (name === 'key-auth' && kind === 'consumer' && typeof c.key !== 'string') return 'property "key" is required';
    if (name === 'prometheus' && kind === 'metadata' && c.prefix !== undefined && typeof c.prefix !== 'string') {
      return 'property "prefix" validation failed: wrong type: expected string, got number';
    }
    return undefined;
  },
  names: () => ['key-auth', 'limit-req', 'prometheus'],
  schema: (name) => ({ type: 'object', title: name }),
};

export const upstream = { type: 'roundrobin', nodes: { '127.0.0.1:1980': 1 } };
