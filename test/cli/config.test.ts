import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { resolveAdminKeys } from '../../src/config/admin-key';
import { DEFAULT_CONFIG_PATH, loadConfig } from '../../src/config/load';
import { parseDurationMs, parseListenAddress } from '../../src/config/parse';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-config-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function writeConfig(name: string, text: string): string {
  const dir = path.join(tmp, name, 'conf');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'config.yaml');
  fs.writeFileSync(file, text);
  return file;
}

describe('loadConfig', () => {
  test('the shipped conf/config.yaml loads and equals the defaults', () => {
    const shipped = loadConfig({ configPath: DEFAULT_CONFIG_PATH, env: {} });
    const missing = path.join(tmp, 'nothing', 'conf', 'config.yaml');
    const defaults = loadConfig({ env: { PALISADE_CONFIG: '' }, cwd: tmp });
    assert.deepEqual(shipped.proxy, defaults.proxy);
    assert.deepEqual(shipped.admin, defaults.admin);
    assert.equal(shipped.workers, 1);
    assert.equal(shipped.native.backend, 'ffi');
    assert.deepEqual(shipped.proxy.listen, [{ host: '0.0.0.0', port: 9080 }]);
    assert.deepEqual(shipped.admin.listen, { host: '127.0.0.1', port: 9180 });
    assert.equal(shipped.proxy.limits.maxHeadBytes, 32768);
    assert.equal(shipped.proxy.limits.maxBodyBytes, 0);
    assert.equal(shipped.proxy.limits.headTimeoutMs, 60_000);
    assert.equal(shipped.store.type, 'embedded');
    assert.deepEqual(shipped.admin.allow, ['127.0.0.0/24', '::1/128'], "APISIX's allow_admin default");
    assert.equal(shipped.admin.maxBodyBytes, 1572864);
    assert.equal(shipped.log.level, 'info');
    assert.ok(!fs.existsSync(missing));
  });

  test('relative paths resolve against the parent of the config directory', () => {
    const file = writeConfig('paths', 'store:\n  data_dir: ./state\n  standalone_file: conf/routes.yaml\n');
    const config = loadConfig({ configPath: file, env: {} });
    assert.equal(config.store.dataDir, path.join(tmp, 'paths', 'state'));
    assert.equal(config.store.standaloneFile, path.join(tmp, 'paths', 'conf', 'routes.yaml'));
    assert.equal(config.configPath, file);
  });

  test('file values override defaults', () => {
    const file = writeConfig(
      'values',
      [
        'proxy:',
        '  listen: ["127.0.0.1:8080", "[::1]:8081", 8082]',
        '  limits: { max_body_bytes: 1024, head_timeout: 500ms, idle_timeout: 2m }',
        '  drain_timeout: 5',
        'workers: 3',
        'native: { backend: js }',
        'admin:',
        '  listen: 127.0.0.1:9999',
        '  keys: [{ key: 0123456789abcdef0123, role: viewer }]',
        '  allow: [10.0.0.0/8]',
        'log: { level: debug }',
      ].join('\n'),
    );
    const config = loadConfig({ configPath: file, env: {} });
    assert.deepEqual(config.proxy.listen, [
      { host: '127.0.0.1', port: 8080 },
      { host: '::1', port: 8081 },
      { host: '0.0.0.0', port: 8082 },
    ]);
    assert.equal(config.proxy.limits.maxBodyBytes, 1024);
    assert.equal(config.proxy.limits.headTimeoutMs, 500);
    assert.equal(config.proxy.limits.idleTimeoutMs, 120_000);
    assert.equal(config.proxy.drainTimeoutMs, 5000);
    assert.equal(config.workers, 3);
    assert.equal(config.native.backend, 'js');
    assert.deepEqual(config.admin.keys, [{ key: '0123456789abcdef0123', role: 'viewer' }]);
    assert.deepEqual(config.admin.allow, ['10.0.0.0/8']);
    assert.equal(config.log.level, 'debug');
  });

  test('workers: auto means one per core', () => {
    const file = writeConfig('auto', 'workers: auto\n');
    assert.equal(loadConfig({ configPath: file, env: {} }).workers, os.availableParallelism());
  });

  test('environment variables override the file', () => {
    const file = writeConfig('env', 'workers: 2\nadmin:\n  keys: [{ key: viewerkey-0123456789, role: viewer }]\n');
    const config = loadConfig({
      configPath: file,
      cwd: tmp,
      env: {
        PALISADE_LISTEN: '127.0.0.1:7000',
        PALISADE_ADMIN_LISTEN: '127.0.0.1:7001',
        PALISADE_ADMIN_KEY: 'adminkey-0123456789',
        PALISADE_DATA_DIR: 'here',
        PALISADE_WORKERS: '4',
        PALISADE_NATIVE_BACKEND: 'napi',
        PALISADE_LOG_LEVEL: 'warn',
      },
    });
    assert.deepEqual(config.proxy.listen, [{ host: '127.0.0.1', port: 7000 }]);
    assert.deepEqual(config.admin.listen, { host: '127.0.0.1', port: 7001 });
    assert.deepEqual(config.admin.keys, [
      { key: 'adminkey-0123456789', role: 'admin' },
      { key: 'viewerkey-0123456789', role: 'viewer' },
    ]);
    assert.equal(config.store.dataDir, path.join(tmp, 'here'));
    assert.equal(config.workers, 4);
    assert.equal(config.native.backend, 'napi');
    assert.equal(config.log.level, 'warn');
  });

  test('PALISADE_CONFIG names the file when -c is not given', () => {
    const file = writeConfig('envfile', 'workers: 2\n');
    assert.equal(loadConfig({ env: { PALISADE_CONFIG: file } }).workers, 2);
  });

  const bad: Array<[string, string, RegExp]> = [
    [
      'port',
      'proxy:\n  listen: ["0.0.0.0:99999"]\n',
      /config\.yaml: proxy\.listen\[0\]\.port must be an integer 1-65535/,
    ],
    ['port-object', 'proxy:\n  listen: [{ host: 0.0.0.0, port: x }]\n', /proxy\.listen\[0\]\.port must be an integer/],
    ['listen-shape', 'proxy:\n  listen: ["nonsense"]\n', /proxy\.listen\[0\] must be "host:port"/],
    ['unknown-top', 'prxy: {}\n', /prxy is not a known setting/],
    ['unknown-nested', 'proxy:\n  limits:\n    max_heads: 1\n', /proxy\.limits\.max_heads is not a known setting/],
    ['workers', 'workers: 0\n', /workers must be an integer 1-256 or "auto"/],
    ['backend', 'native: { backend: rust }\n', /native\.backend must be one of ffi, napi, js/],
    ['duration', 'proxy: { limits: { head_timeout: soon } }\n', /proxy\.limits\.head_timeout must be a duration/],
    ['cidr', 'admin: { allow: [10.0.0.0/40] }\n', /admin\.allow\[0\] must be a CIDR/],
    ['short-key', 'admin: { keys: [{ key: short }] }\n', /admin\.keys\[0\]\.key must be at least 16 characters/],
    ['role', 'admin: { keys: [{ key: 0123456789abcdef, role: root }] }\n', /admin\.keys\[0\]\.role must be one of/],
    ['store', 'store: { type: etcd3 }\n', /store\.type must be one of embedded, standalone/],
    [
      'admin-body-zero',
      'admin: { max_body_bytes: 0 }\n',
      /config\.yaml: admin\.max_body_bytes must be an integer >= 1 \(0 would refuse every request body\)/,
    ],
    ['admin-body-negative', 'admin: { max_body_bytes: -5 }\n', /admin\.max_body_bytes must be an integer >= 1/],
    ['admin-body-fraction', 'admin: { max_body_bytes: 1.5 }\n', /admin\.max_body_bytes must be an integer >= 1/],
    [
      'head-timeout-zero',
      'proxy: { limits: { head_timeout: 0 } }\n',
      /proxy\.limits\.head_timeout must be at least 1ms \(0 would time out every request head at once\)/,
    ],
    [
      'head-timeout-0ms',
      'proxy: { limits: { head_timeout: 0ms } }\n',
      /proxy\.limits\.head_timeout must be at least 1ms/,
    ],
    [
      'idle-timeout-zero',
      'proxy: { limits: { idle_timeout: 0 } }\n',
      /proxy\.limits\.idle_timeout must be at least 1ms \(0 would drop every client that pauses/,
    ],
    [
      'etcd-timeout-zero',
      'deployment: { etcd: { host: ["http://127.0.0.1:2379"], timeout: 0s } }\n',
      /deployment\.etcd\.timeout must be at least 1ms \(0 would fail every etcd request\)/,
    ],
    [
      'offload-threads-zero',
      'plugin_attr: { offload: { threads: 0 } }\n',
      /plugin_attr\.offload\.threads must be an integer from 1 to 64/,
    ],
    ['offload-unknown', 'plugin_attr: { offload: { size: 2 } }\n', /plugin_attr\.offload\.size unknown key/],
    [
      'prometheus-refresh-zero',
      'plugin_attr: { prometheus: { refresh_interval: 0 } }\n',
      /plugin_attr\.prometheus\.refresh_interval must be at least 1ms/,
    ],
    [
      'prometheus-refresh-word',
      'plugin_attr: { prometheus: { refresh_interval: soon } }\n',
      /plugin_attr\.prometheus\.refresh_interval must be a duration/,
    ],
    ['yaml', 'proxy: [\n', /invalid YAML/],
    ['top-level', '- a\n- b\n', /top level must be a mapping/],
  ];
  for (const [name, text, message] of bad) {
    test(`rejects a bad file: ${name}`, () => {
      const file = writeConfig(`bad-${name}`, text);
      assert.throws(
        () => loadConfig({ configPath: file, env: {} }),
        (err: Error & { code?: string }) => {
          assert.equal(err.code, 'PAL_ERR_CONFIG');
          assert.match(err.message, message);
          return true;
        },
      );
    });
  }

  test('plugin_attr.offload sets the pool of each worker', () => {
    const file = writeConfig(
      'offload',
      'plugin_attr: { offload: { threads: 2, max_queue: 64, max_queued_bytes: 1048576, nice: 10 } }\n',
    );
    assert.deepEqual(loadConfig({ configPath: file, env: {} }).offload, {
      size: 2,
      maxQueue: 64,
      maxQueuedBytes: 1048576,
      nice: 10,
    });
    assert.deepEqual(loadConfig({ configPath: writeConfig('offload-none', 'workers: 1\n'), env: {} }).offload, {});
  });

  test('plugin_attr.prometheus.refresh_interval: 15 s unless set, in seconds or with a unit', () => {
    const refresh = (name: string, text: string) =>
      loadConfig({ configPath: writeConfig(name, text), env: {} }).prometheus?.refreshIntervalMs;
    assert.equal(refresh('refresh-default', 'workers: 1\n'), 15_000);
    assert.equal(refresh('refresh-seconds', 'plugin_attr: { prometheus: { refresh_interval: 30 } }\n'), 30_000);
    assert.equal(refresh('refresh-ms', 'plugin_attr: { prometheus: { refresh_interval: 500ms } }\n'), 500);
  });

  test('admin.max_body_bytes: 1 is the smallest accepted', () => {
    const file = writeConfig('admin-body-one', 'admin: { max_body_bytes: 1 }\n');
    assert.equal(loadConfig({ configPath: file, env: {} }).admin.maxBodyBytes, 1);
  });

  test('palisade start refuses admin.max_body_bytes: 0 before listening, naming the field', async () => {
    const file = writeConfig('start-body-zero', 'admin: { max_body_bytes: 0 }\nstore: { data_dir: ./data }\n');
    const bin = path.join(__dirname, '..', '..', '..', 'bin', 'palisade');
    const child = spawn(process.execPath, [bin, 'start', '-c', file], {
      cwd: path.dirname(file),
      env: Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('PALISADE_'))),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const code = await new Promise<number | null>((resolve) => child.on('exit', (exitCode) => resolve(exitCode)));
    clearTimeout(timer);
    assert.notEqual(code, 0, output);
    assert.notEqual(code, null, `palisade start did not exit on a bad config:\n${output}`);
    assert.match(output, /admin\.max_body_bytes must be an integer >= 1/);
  });

  test('an error names the file as given relative to the current directory', () => {
    const file = writeConfig('shown', 'workers: many\n');
    assert.throws(() => loadConfig({ configPath: file, cwd: path.join(tmp, 'shown'), env: {} }), {
      message: 'conf/config.yaml: workers must be an integer 1-256 or "auto"',
    });
  });

  test('bad environment values name the variable', () => {
    assert.throws(() => loadConfig({ configPath: DEFAULT_CONFIG_PATH, env: { PALISADE_WORKERS: 'lots' } }), {
      message: /environment: PALISADE_WORKERS must be/,
    });
    assert.throws(() => loadConfig({ configPath: DEFAULT_CONFIG_PATH, env: { PALISADE_LISTEN: 'x:0' } }), {
      message: /PALISADE_LISTEN\.port must be an integer 1-65535/,
    });
  });

  test('an explicit config file that does not exist is an error', () => {
    assert.throws(() => loadConfig({ configPath: path.join(tmp, 'missing.yaml'), env: {} }), /no such file/);
  });
});

describe('parsers', () => {
  test('durations', () => {
    assert.equal(parseDurationMs(1.5, 'x'), 1500);
    assert.equal(parseDurationMs('250ms', 'x'), 250);
    assert.equal(parseDurationMs('3s', 'x'), 3000);
    assert.equal(parseDurationMs('10', 'x'), 10_000);
    assert.throws(() => parseDurationMs(-1, 'x'));
  });

  test('listen addresses', () => {
    assert.deepEqual(parseListenAddress('localhost:80', 'x', '0.0.0.0'), { host: 'localhost', port: 80 });
    assert.deepEqual(parseListenAddress({ port: 81 }, 'x', '0.0.0.0'), { host: '0.0.0.0', port: 81 });
    assert.throws(() => parseListenAddress('::1:80', 'x', '0.0.0.0'), /IPv6 as/);
  });
});

describe('admin key', () => {
  test('generated once with mode 0600, then reused', () => {
    const dataDir = path.join(tmp, 'keys', 'data');
    const first = resolveAdminKeys([], dataDir);
    assert.ok(first.generated);
    assert.match(first.generated.key, /^[0-9a-f]{32}$/);
    assert.equal(fs.statSync(first.generated.file).mode & 0o777, 0o600);
    const second = resolveAdminKeys([], dataDir);
    assert.equal(second.generated, undefined);
    assert.deepEqual(second.keys, [{ key: first.generated.key, role: 'admin' }]);
  });

  test('a configured admin key means nothing is generated', () => {
    const dataDir = path.join(tmp, 'keys-configured', 'data');
    const resolved = resolveAdminKeys([{ key: 'configured-key-0123', role: 'admin' }], dataDir);
    assert.equal(resolved.generated, undefined);
    assert.ok(!fs.existsSync(dataDir));
  });

  test('a viewer-only configuration still gets a generated admin key', () => {
    const dataDir = path.join(tmp, 'keys-viewer', 'data');
    const resolved = resolveAdminKeys([{ key: 'viewer-key-0123456', role: 'viewer' }], dataDir);
    assert.ok(resolved.generated);
    assert.deepEqual(
      resolved.keys.map((k) => k.role),
      ['admin', 'viewer'],
    );
  });
});
