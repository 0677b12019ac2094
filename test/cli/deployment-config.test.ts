// config.yaml's deployment role, etcd store, control API and shared dicts, and
// the environment variables that set them.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { DEFAULT_CONFIG_PATH, loadConfig } from '../../src/config/load';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-deployment-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

let files = 0;
function configFile(text: string): string {
  const dir = path.join(tmp, `c${files++}`, 'conf');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'config.yaml');
  fs.writeFileSync(file, text);
  return file;
}

function load(text: string, env: NodeJS.ProcessEnv = {}) {
  return loadConfig({ configPath: configFile(text), env });
}

describe('deployment, etcd, control and shared dicts', () => {
  test('the shipped file: traditional, embedded, control API on 127.0.0.1:9090, the health check dict', () => {
    const config = loadConfig({ configPath: DEFAULT_CONFIG_PATH, env: {} });
    assert.equal(config.deployment.role, 'traditional');
    assert.equal(config.store.type, 'embedded');
    assert.deepEqual(config.store.etcd, { hosts: ['http://127.0.0.1:2379'], prefix: '/apisix', timeoutMs: 5000 });
    assert.deepEqual(config.control, { listen: { host: '127.0.0.1', port: 9090 } });
    const tenMiB = 10 * 1024 * 1024;
    assert.deepEqual(config.sharedDicts, [
      { name: 'upstream-healthcheck', capacity: tenMiB },
      { name: 'plugin-limit-count', capacity: tenMiB },
      { name: 'plugin-limit-req', capacity: tenMiB },
      { name: 'plugin-limit-conn', capacity: tenMiB },
      { name: 'plugin-api-breaker', capacity: tenMiB },
    ]);
  });

  test('etcd from the file', () => {
    const config = load(
      [
        'deployment:',
        '  role: data_plane',
        '  etcd:',
        '    host: ["http://10.0.0.1:2379/", "https://10.0.0.2:2379"]',
        '    prefix: /gateway/',
        '    timeout: 2s',
        '    user: palisade',
        '    password: secret',
        'store: { type: etcd }',
      ].join('\n'),
    );
    assert.equal(config.deployment.role, 'data_plane');
    assert.equal(config.store.type, 'etcd');
    assert.deepEqual(config.store.etcd, {
      hosts: ['http://10.0.0.1:2379', 'https://10.0.0.2:2379'],
      prefix: '/gateway',
      timeoutMs: 2000,
      user: 'palisade',
      password: 'secret',
    });
  });

  test('PALISADE_ETCD_HOSTS switches the store to etcd; PALISADE_ETCD_PREFIX and PALISADE_DEPLOYMENT_ROLE apply', () => {
    const config = load('store: { type: embedded }\n', {
      PALISADE_ETCD_HOSTS: 'http://127.0.0.1:2379, http://127.0.0.1:22379',
      PALISADE_ETCD_PREFIX: '/edge',
      PALISADE_DEPLOYMENT_ROLE: 'control_plane',
    });
    assert.equal(config.store.type, 'etcd');
    assert.deepEqual(config.store.etcd?.hosts, ['http://127.0.0.1:2379', 'http://127.0.0.1:22379']);
    assert.equal(config.store.etcd?.prefix, '/edge');
    assert.equal(config.deployment.role, 'control_plane');
    assert.throws(
      () => load('', { PALISADE_ETCD_HOSTS: 'etcd:2379' }),
      /PALISADE_ETCD_HOSTS must be an http:\/\/ or https:\/\/ URL/,
    );
  });

  test('control API: another address, disabled in the file or with PALISADE_CONTROL_LISTEN=off', () => {
    assert.deepEqual(load('control: { listen: 9191 }\n').control, { listen: { host: '127.0.0.1', port: 9191 } });
    assert.equal(load('control: { enabled: false }\n').control, undefined);
    assert.equal(load('', { PALISADE_CONTROL_LISTEN: 'off' }).control, undefined);
    assert.deepEqual(load('', { PALISADE_CONTROL_LISTEN: '127.0.0.1:9300' }).control?.listen.port, 9300);
  });

  test('shared dicts: sizes, and the health check and plugin dicts always present', () => {
    const config = load('shared_dicts: { limits: 512k, upstream-healthcheck: 1m, counters: 65536 }\n');
    const tenMiB = 10 * 1024 * 1024;
    assert.deepEqual(config.sharedDicts, [
      { name: 'upstream-healthcheck', capacity: 1024 * 1024 },
      { name: 'plugin-limit-count', capacity: tenMiB },
      { name: 'plugin-limit-req', capacity: tenMiB },
      { name: 'plugin-limit-conn', capacity: tenMiB },
      { name: 'plugin-api-breaker', capacity: tenMiB },
      { name: 'limits', capacity: 512 * 1024 },
      { name: 'counters', capacity: 65536 },
    ]);
  });

  test('workers: auto is one per core', () => {
    assert.equal(load('workers: auto\n').workers, os.availableParallelism());
  });

  test('invalid combinations and values name the field', () => {
    const cases: Array<[string, RegExp]> = [
      ['deployment: { role: control_plane }\n', /deployment\.role control_plane needs store\.type etcd/],
      ['deployment: { role: data_plane }\n', /deployment\.role data_plane reads its configuration from etcd/],
      ['deployment: { role: edge }\n', /deployment\.role must be one of traditional, data_plane, control_plane/],
      ['store: { type: etcd }\ndeployment: { etcd: { host: [] } }\n', /deployment\.etcd\.host must name at least one/],
      ['deployment: { etcd: { host: [ftp://x] } }\n', /deployment\.etcd\.host\[0\] must be an http/],
      ['deployment: { etcd: { prefix: apisix } }\n', /deployment\.etcd\.prefix must start with "\/"/],
      ['deployment: { etcd: { hosts: [] } }\n', /deployment\.etcd\.hosts is not a known setting/],
      ['shared_dicts: { limits: 10x }\n', /shared_dicts\.limits must be a size/],
      ['shared_dicts: { limits: 1k }\n', /shared_dicts\.limits must be between 32k and 2g/],
      ['shared_dicts: { "bad name": 1m }\n', /shared_dicts\.bad name names must be/],
      ['control: { enabled: yes please }\n', /control\.enabled must be true or false/],
    ];
    for (const [text, message] of cases) assert.throws(() => load(text), message, text);
    // A standalone data plane is fine.
    assert.equal(load('deployment: { role: data_plane }\nstore: { type: standalone }\n').deployment.role, 'data_plane');
  });
});
