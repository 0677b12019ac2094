import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { PalisadeError } from '../../src/core/errors';
import { createStandaloneStore } from '../../src/store/index';
import type { ConfigSnapshot, ConfigStore } from '../../src/store/types';
import { startAdmin } from '../admin/harness';

const goodYaml = `
upstreams:
  - id: u1
    nodes:
      "127.0.0.1:1980": 1
    type: roundrobin
routes:
  - id: r1
    uri: /hello
    upstream_id: u1
  - uri: /no-id
    upstream:
      nodes:
        "127.0.0.1:1980": 1
consumers:
  - username: jack
plugin_metadata:
  - id: prometheus
    prefix: pal_
#END
`;

function waitFor(predicate: () => boolean, timeoutMs = 3000): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const tick = () => {
      if (predicate()) return resolve();
      if (Date.now() - started > timeoutMs) return reject(new Error('timed out waiting'));
      setTimeout(tick, 20);
    };
    tick();
  });
}

/** Replace the file as deployment tools do: write aside, then rename over. */
function replaceFile(file: string, text: string): void {
  writeFileSync(file + '.new', text);
  renameSync(file + '.new', file);
}

describe('standalone YAML store', () => {
  let dir: string;
  let file: string;
  let store: ConfigStore | undefined;

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'palisade-yaml-'));
    file = path.join(dir, 'apisix.yaml');
  });
  afterEach(async () => {
    await store?.close();
    store = undefined;
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('loads an APISIX-format file with #END', async () => {
    writeFileSync(file, goodYaml);
    store = createStandaloneStore(file, { pollMs: 50 });
    await store.open();
    assert.equal(store.readOnly, true);
    assert.equal(store.get('routes', 'r1')?.value.uri, '/hello');
    assert.equal(store.get('routes', 'arr_2')?.value.uri, '/no-id');
    assert.equal(store.get('routes', 'arr_2')?.key, '/apisix/routes/arr_2');
    assert.equal(store.get('consumers', 'jack')?.value.username, 'jack');
    assert.equal(store.get('plugin_metadata', 'prometheus')?.value.prefix, 'pal_');
    const snapshot = store.snapshot();
    assert.equal(snapshot.routes.length, 2);
    assert.equal(snapshot.upstreams.length, 1);
  });

  it('keeps numeric ids and references as strings, as the data plane looks them up', async () => {
    writeFileSync(
      file,
      'upstreams:\n  - id: 1\n    nodes:\n      "127.0.0.1:1980": 1\nroutes:\n  - id: 2\n    uri: /n\n    upstream_id: 1\n',
    );
    store = createStandaloneStore(file, { pollMs: 50 });
    await store.open();
    const [route] = store.snapshot().routes;
    assert.equal(route.id, '2');
    assert.equal(route.upstream_id, '1');
    assert.equal(store.snapshot().upstreams[0].id, '1');
  });

  it('loads a file without #END and an empty file', async () => {
    writeFileSync(file, goodYaml.replace('#END\n', ''));
    store = createStandaloneStore(file, { pollMs: 50 });
    await store.open();
    assert.equal(store.list('routes').length, 2);
    await store.close();
    writeFileSync(file, '#END\n');
    store = createStandaloneStore(file, { pollMs: 50 });
    await store.open();
    assert.equal(store.list('routes').length, 0);
  });

  it('fails to open a missing or invalid file', async () => {
    await assert.rejects(createStandaloneStore(path.join(dir, 'missing.yaml')).open(), /cannot read/);
    const bad = path.join(dir, 'bad.yaml');
    writeFileSync(bad, 'routes:\n  - id: r1\n    uri: ""\n');
    await assert.rejects(
      createStandaloneStore(bad).open(),
      /routes\[0\] \(id "r1"\): invalid configuration: property "uri"/,
    );
  });

  it('reloads when the file changes and notifies listeners', async () => {
    writeFileSync(file, goodYaml);
    store = createStandaloneStore(file, { pollMs: 50 });
    await store.open();
    const seen: ConfigSnapshot[] = [];
    store.onChange((snapshot) => seen.push(snapshot));
    const before = store.snapshot().version;
    replaceFile(file, goodYaml.replace('uri: /hello', 'uri: /changed'));
    await waitFor(() => store?.get('routes', 'r1')?.value.uri === '/changed');
    assert.ok(store.snapshot().version > before);
    assert.equal(seen.at(-1)?.routes.find((r) => r.id === 'r1')?.uri, '/changed');
    // The unchanged upstream keeps its indexes.
    assert.equal(store.get('upstreams', 'u1')?.modifiedIndex, 1);
  });

  it('rejects an invalid change, reports where, and keeps serving the last good config', async () => {
    writeFileSync(file, goodYaml);
    const errors: string[] = [];
    store = createStandaloneStore(file, { pollMs: 50, onError: (msg) => errors.push(msg) });
    await store.open();
    const version = store.snapshot().version;
    replaceFile(
      file,
      goodYaml
        .replace('  - uri: /no-id', '  - id: r3\n    uri: ""')
        .replace('routes:\n', 'routes:\n  - id: r0\n    uri: /zero\n    upstream_id: u1\n'),
    );
    await waitFor(() => errors.length > 0);
    assert.match(
      errors[0],
      /routes\[2\] \(id "r3"\): invalid configuration: property "uri" validation failed: string too short, expected at least 1, got 0$/,
    );
    assert.equal(store.snapshot().version, version);
    assert.equal(store.get('routes', 'r0'), undefined);
    assert.equal(store.get('routes', 'r1')?.value.uri, '/hello');
    // The same bad content is reported once, not on every poll.
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(errors.length, 1);

    replaceFile(file, goodYaml.replace('uri: /hello', 'uri: /fixed'));
    await waitFor(() => store?.get('routes', 'r1')?.value.uri === '/fixed');
  });

  it('reports duplicate ids and malformed YAML', async () => {
    writeFileSync(file, goodYaml);
    const errors: string[] = [];
    store = createStandaloneStore(file, { pollMs: 50, onError: (msg) => errors.push(msg) });
    await store.open();
    replaceFile(file, 'routes:\n  - id: a\n    uri: /a\n  - id: a\n    uri: /b\n');
    await waitFor(() => errors.length === 1);
    assert.match(errors[0], /routes\[1\] \(id "a"\): duplicate id/);
    replaceFile(file, 'routes: [\n');
    await waitFor(() => errors.length === 2);
    assert.match(errors[1], /invalid YAML/);
    assert.equal(store.list('routes').length, 2);
  });

  it('refuses writes, and the Admin API reports read-only', async () => {
    writeFileSync(file, goodYaml);
    store = createStandaloneStore(file, { pollMs: 50 });
    await store.open();
    await assert.rejects(store.put('routes', 'x', {}), (err) => err instanceof PalisadeError && err.status === 400);
    const admin = await startAdmin({ store });
    try {
      const list = await admin.call('GET', '/routes');
      assert.equal(list.json.total, 2);
      const put = await admin.call('PUT', '/routes/x', { uri: '/x', upstream_id: 'u1' });
      assert.equal(put.status, 400);
      assert.match(String(put.json.error_msg), /read-only/);
      assert.equal((await admin.call('DELETE', '/routes/r1')).status, 400);
    } finally {
      await admin.close();
      store = undefined; // closed by the harness
    }
  });
});
