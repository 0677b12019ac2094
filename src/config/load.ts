// Load the gateway configuration: documented defaults, overlaid by
// conf/config.yaml (or the file named by `-c` / PALISADE_CONFIG), overlaid by
// PALISADE_* environment variables. Every problem is reported as
// `<file>: <field> <what is wrong>`.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseDocument } from 'yaml';
import { PAL_ERR_CONFIG } from '../core/errors';
import type { LogLevel } from '../core/log';
import type { BackendName } from '../native/backend';
import { packageRoot } from '../native/paths';
import { SHDICT_MAX_CAPACITY, SHDICT_MIN_CAPACITY } from '../native/layout';
import { parseDictSize } from '../native/shdict';
import { OffloadSettingError, parseOffloadAttr, type OffloadPoolOptions } from '../plugins/offload';
import * as defaults from './defaults';
import {
  ConfigFieldError,
  isPlainObject,
  parseCidr,
  parseDurationMs,
  parseEnum,
  parseIntegerAtLeast,
  parseListenAddress,
  parseNonEmptyString,
  parseNonNegativeInteger,
  parsePositiveDurationMs,
  rejectUnknownKeys,
} from './parse';
import type {
  AdminKeyConfig,
  AdminRole,
  DeploymentRole,
  EtcdConfig,
  ListenAddress,
  PalisadeConfig,
  PluginsConfig,
  PrometheusConfig,
  SharedDictConfig,
  StoreType,
} from './types';

export const BACKENDS: readonly BackendName[] = ['ffi', 'napi', 'js'];
export const STORE_TYPES: readonly StoreType[] = ['embedded', 'standalone', 'etcd'];
export const DEPLOYMENT_ROLES: readonly DeploymentRole[] = ['traditional', 'data_plane', 'control_plane'];
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];
const ROLES: readonly AdminRole[] = ['admin', 'viewer'];

export const DEFAULT_CONFIG_PATH = path.join(packageRoot, 'conf', 'config.yaml');

export interface LoadOptions {
  /** Path given on the command line (`-c FILE`); wins over PALISADE_CONFIG. */
  configPath?: string;
  env?: NodeJS.ProcessEnv;
  /** Directory relative paths given on the command line resolve against. */
  cwd?: string;
}

/** Which file to read: `-c`, then PALISADE_CONFIG, then conf/config.yaml in the package. */
export function resolveConfigPath(options: LoadOptions = {}): { path: string; explicit: boolean } {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const given = options.configPath ?? env.PALISADE_CONFIG;
  if (given !== undefined && given !== '') return { path: path.resolve(cwd, given), explicit: true };
  return { path: DEFAULT_CONFIG_PATH, explicit: false };
}

/** How a config path is shown in messages: relative to cwd when it lies below it. */
function displayPath(file: string, cwd: string): string {
  const relative = path.relative(cwd, file);
  return relative !== '' && !relative.startsWith('..') && !path.isAbsolute(relative) ? relative : file;
}

export function loadConfig(options: LoadOptions = {}): PalisadeConfig {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const { path: file, explicit } = resolveConfigPath(options);
  const shown = displayPath(file, cwd);

  let raw: unknown = {};
  let configPath: string | undefined;
  if (fs.existsSync(file)) {
    raw = readYaml(file, shown);
    configPath = file;
  } else if (explicit) {
    throw PAL_ERR_CONFIG(`${shown}: no such file`);
  }

  // Relative paths in the file resolve against the parent of the file's
  // directory: for conf/config.yaml that is the package root, so `./data`
  // means <root>/data wherever the gateway is started from.
  const baseDir = configPath ? path.dirname(path.dirname(configPath)) : packageRoot;

  let config: PalisadeConfig;
  try {
    config = fromRaw(raw, baseDir, configPath);
  } catch (err) {
    if (err instanceof ConfigFieldError) throw PAL_ERR_CONFIG(`${shown}: ${err.message}`);
    throw err;
  }
  try {
    applyEnvironment(config, env, cwd);
  } catch (err) {
    if (err instanceof ConfigFieldError) throw PAL_ERR_CONFIG(`environment: ${err.message}`);
    throw err;
  }
  try {
    checkRoleAndStore(config);
  } catch (err) {
    if (err instanceof ConfigFieldError) throw PAL_ERR_CONFIG(`${shown}: ${err.message}`);
    throw err;
  }
  return config;
}

function readYaml(file: string, shown: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw PAL_ERR_CONFIG(`${shown}: cannot read (${(err as Error).message})`);
  }
  const document = parseDocument(text, { prettyErrors: true });
  if (document.errors.length > 0) {
    throw PAL_ERR_CONFIG(`${shown}: invalid YAML: ${document.errors[0].message}`);
  }
  const value: unknown = document.toJS();
  if (value === null || value === undefined) return {};
  if (!isPlainObject(value)) throw PAL_ERR_CONFIG(`${shown}: the top level must be a mapping`);
  return value;
}

function section(raw: Record<string, unknown>, key: string, known: readonly string[]): Record<string, unknown> {
  const value = raw[key];
  if (value === undefined || value === null) return {};
  if (!isPlainObject(value)) throw new ConfigFieldError(key, 'must be a mapping');
  rejectUnknownKeys(value, known, key);
  return value;
}

function parseWorkers(value: unknown, field: string): number {
  if (value === 'auto') return os.availableParallelism();
  const count = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof count !== 'number' || !Number.isInteger(count) || count < 1 || count > 256) {
    throw new ConfigFieldError(field, 'must be an integer 1-256 or "auto"');
  }
  return count;
}

function parseAdminKeys(value: unknown): AdminKeyConfig[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new ConfigFieldError('admin.keys', 'must be a list of {key, role}');
  return value.map((entry: unknown, i) => {
    const field = `admin.keys[${i}]`;
    if (!isPlainObject(entry)) throw new ConfigFieldError(field, 'must be a mapping {key, role}');
    rejectUnknownKeys(entry, ['key', 'role', 'name'], field);
    const key = parseNonEmptyString(entry.key, `${field}.key`);
    if (key.length < 16) throw new ConfigFieldError(`${field}.key`, 'must be at least 16 characters');
    const role = entry.role === undefined ? 'admin' : parseEnum(entry.role, ROLES, `${field}.role`);
    return { key, role };
  });
}

function fromRaw(rawValue: unknown, baseDir: string, configPath: string | undefined): PalisadeConfig {
  const raw = rawValue as Record<string, unknown>;
  rejectUnknownKeys(
    raw,
    [
      'proxy',
      'workers',
      'native',
      'admin',
      'deployment',
      'store',
      'control',
      'shared_dicts',
      'plugins',
      'plugin_dir',
      'plugin_upload',
      'serverless',
      'plugin_attr',
      'log',
    ],
    '',
  );
  const proxy = section(raw, 'proxy', ['listen', 'limits', 'drain_timeout']);
  const limits = isPlainObject(proxy.limits) ? proxy.limits : {};
  if (proxy.limits !== undefined && proxy.limits !== null && !isPlainObject(proxy.limits)) {
    throw new ConfigFieldError('proxy.limits', 'must be a mapping');
  }
  rejectUnknownKeys(
    limits,
    ['max_head_bytes', 'max_body_bytes', 'head_timeout', 'idle_timeout', 'plugin_release_grace'],
    'proxy.limits',
  );
  const native = section(raw, 'native', ['backend']);
  const admin = section(raw, 'admin', ['listen', 'keys', 'allow', 'max_body_bytes']);
  const store = section(raw, 'store', ['type', 'data_dir', 'standalone_file']);
  const log = section(raw, 'log', ['level']);
  const deployment = section(raw, 'deployment', ['role', 'etcd']);
  const control = section(raw, 'control', ['enabled', 'listen']);
  const serverless = section(raw, 'serverless', ['enabled']);

  const listenRaw = proxy.listen ?? [defaults.DEFAULT_PROXY_LISTEN];
  const listenList = Array.isArray(listenRaw) ? listenRaw : [listenRaw];
  if (listenList.length === 0) throw new ConfigFieldError('proxy.listen', 'must name at least one address');
  const listen = listenList.map((entry: unknown, i) => parseListenAddress(entry, `proxy.listen[${i}]`, '0.0.0.0'));

  const maxHeadBytes =
    limits.max_head_bytes === undefined
      ? defaults.DEFAULT_MAX_HEAD_BYTES
      : parseNonNegativeInteger(limits.max_head_bytes, 'proxy.limits.max_head_bytes');
  if (maxHeadBytes < 1024) throw new ConfigFieldError('proxy.limits.max_head_bytes', 'must be at least 1024');

  const allowRaw = admin.allow ?? defaults.DEFAULT_ADMIN_ALLOW;
  if (!Array.isArray(allowRaw)) throw new ConfigFieldError('admin.allow', 'must be a list of CIDRs');

  const dataDir = store.data_dir ?? defaults.DEFAULT_DATA_DIR;
  const standaloneFile = store.standalone_file ?? defaults.DEFAULT_STANDALONE_FILE;

  return {
    configPath,
    proxy: {
      listen,
      limits: {
        maxHeadBytes,
        maxBodyBytes:
          limits.max_body_bytes === undefined
            ? defaults.DEFAULT_MAX_BODY_BYTES
            : parseNonNegativeInteger(limits.max_body_bytes, 'proxy.limits.max_body_bytes'),
        headTimeoutMs:
          limits.head_timeout === undefined
            ? defaults.DEFAULT_HEAD_TIMEOUT_MS
            : parsePositiveDurationMs(
                limits.head_timeout,
                'proxy.limits.head_timeout',
                '0 would time out every request head at once',
              ),
        idleTimeoutMs:
          limits.idle_timeout === undefined
            ? defaults.DEFAULT_IDLE_TIMEOUT_MS
            : parsePositiveDurationMs(
                limits.idle_timeout,
                'proxy.limits.idle_timeout',
                '0 would drop every client that pauses, between requests or while reading a response',
              ),
        pluginReleaseGraceMs:
          limits.plugin_release_grace === undefined
            ? undefined
            : parsePluginReleaseGrace(limits.plugin_release_grace, 'proxy.limits.plugin_release_grace'),
      },
      drainTimeoutMs:
        proxy.drain_timeout === undefined
          ? defaults.DEFAULT_DRAIN_TIMEOUT_MS
          : parseDurationMs(proxy.drain_timeout, 'proxy.drain_timeout'),
    },
    workers: raw.workers === undefined ? defaults.DEFAULT_WORKERS : parseWorkers(raw.workers, 'workers'),
    native: {
      backend: parseEnum(native.backend ?? defaults.DEFAULT_NATIVE_BACKEND, BACKENDS, 'native.backend'),
    },
    admin: {
      listen: parseListenAddress(admin.listen ?? defaults.DEFAULT_ADMIN_LISTEN, 'admin.listen', '0.0.0.0'),
      keys: parseAdminKeys(admin.keys),
      allow: allowRaw.map((entry: unknown, i) => parseCidr(entry, `admin.allow[${i}]`)),
      maxBodyBytes:
        admin.max_body_bytes === undefined
          ? defaults.DEFAULT_ADMIN_MAX_BODY_BYTES
          : parseIntegerAtLeast(admin.max_body_bytes, 1, 'admin.max_body_bytes', '0 would refuse every request body'),
    },
    store: {
      type: parseEnum(store.type ?? defaults.DEFAULT_STORE_TYPE, STORE_TYPES, 'store.type'),
      dataDir: path.resolve(baseDir, parseNonEmptyString(dataDir, 'store.data_dir')),
      standaloneFile: path.resolve(baseDir, parseNonEmptyString(standaloneFile, 'store.standalone_file')),
      etcd: parseEtcd(deployment.etcd),
    },
    deployment: {
      role: parseEnum(deployment.role ?? defaults.DEFAULT_DEPLOYMENT_ROLE, DEPLOYMENT_ROLES, 'deployment.role'),
    },
    control: parseControl(control),
    sharedDicts: parseSharedDicts(raw.shared_dicts),
    plugins: parsePlugins(raw, serverless, baseDir),
    prometheus: parsePrometheus(raw.plugin_attr),
    offload: parseOffload(raw.plugin_attr),
    log: { level: parseEnum(log.level ?? defaults.DEFAULT_LOG_LEVEL, LOG_LEVELS, 'log.level') },
  };
}

/** The longest delay setTimeout keeps; Node runs a longer one after 1 ms instead. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * `proxy.limits.plugin_release_grace`: how long a compiled plugin configuration
 * outlives the last route table using it before the plugin's release() runs.
 */
function parsePluginReleaseGrace(value: unknown, field: string): number {
  const ms = parsePositiveDurationMs(
    value,
    field,
    "0 would run a plugin's release() under requests still running with its configuration",
  );
  if (ms > MAX_TIMER_MS) {
    throw new ConfigFieldError(
      field,
      `must be at most ${MAX_TIMER_MS}ms (about 24 days; a longer timer would fire at once)`,
    );
  }
  return ms;
}

function parseEtcd(value: unknown): EtcdConfig | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isPlainObject(value)) throw new ConfigFieldError('deployment.etcd', 'must be a mapping');
  rejectUnknownKeys(value, ['host', 'prefix', 'timeout', 'user', 'password'], 'deployment.etcd');
  const hostRaw = value.host ?? [];
  const hostList: unknown[] = Array.isArray(hostRaw) ? hostRaw : [hostRaw];
  const etcd: EtcdConfig = {
    hosts: hostList.map((host, i) => parseEtcdUrl(host, `deployment.etcd.host[${i}]`)),
    prefix: parseEtcdPrefix(value.prefix ?? defaults.DEFAULT_ETCD_PREFIX, 'deployment.etcd.prefix'),
    timeoutMs:
      value.timeout === undefined
        ? defaults.DEFAULT_ETCD_TIMEOUT_MS
        : parsePositiveDurationMs(value.timeout, 'deployment.etcd.timeout', '0 would fail every etcd request'),
  };
  if (value.user !== undefined && value.user !== null) {
    etcd.user = parseNonEmptyString(value.user, 'deployment.etcd.user');
    etcd.password = value.password === undefined ? '' : String(value.password);
  }
  return etcd;
}

function parseEtcdUrl(value: unknown, field: string): string {
  const text = parseNonEmptyString(value, field).trim();
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigFieldError(field, `must be a URL such as http://127.0.0.1:2379, got "${text}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigFieldError(field, `must be an http:// or https:// URL, got "${text}"`);
  }
  return text.replace(/\/+$/, '');
}

function parseEtcdPrefix(value: unknown, field: string): string {
  const text = parseNonEmptyString(value, field).trim();
  if (!text.startsWith('/') || text.length < 2) throw new ConfigFieldError(field, `must start with "/", got "${text}"`);
  return text.replace(/\/+$/, '');
}

function parseControl(control: Record<string, unknown>): { listen: ListenAddress } | undefined {
  if (control.enabled !== undefined && typeof control.enabled !== 'boolean') {
    throw new ConfigFieldError('control.enabled', 'must be true or false');
  }
  if (control.enabled === false) return undefined;
  return {
    listen: parseListenAddress(control.listen ?? defaults.DEFAULT_CONTROL_LISTEN, 'control.listen', '127.0.0.1'),
  };
}

function parseBoolean(value: unknown, fallback: boolean, field: string): boolean {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'boolean') throw new ConfigFieldError(field, 'must be true or false');
  return value;
}

function parsePlugins(
  raw: Record<string, unknown>,
  serverless: Record<string, unknown>,
  baseDir: string,
): PluginsConfig {
  let enabled: string[] | undefined;
  if (raw.plugins !== undefined && raw.plugins !== null) {
    if (!Array.isArray(raw.plugins)) throw new ConfigFieldError('plugins', 'must be a list of plugin names');
    enabled = raw.plugins.map((name: unknown, i) => {
      const text = parseNonEmptyString(name, `plugins[${i}]`);
      if (!/^[a-z0-9][a-z0-9_-]*$/.test(text)) {
        throw new ConfigFieldError(`plugins[${i}]`, 'must be a plugin name (lower-case letters, digits, - and _)');
      }
      return text;
    });
  }
  const dir =
    raw.plugin_dir === undefined || raw.plugin_dir === null
      ? undefined
      : path.resolve(baseDir, parseNonEmptyString(raw.plugin_dir, 'plugin_dir'));
  const upload = parseBoolean(raw.plugin_upload, defaults.DEFAULT_PLUGIN_UPLOAD, 'plugin_upload');
  if (upload && dir === undefined) throw new ConfigFieldError('plugin_upload', 'needs plugin_dir to store uploads in');
  return {
    enabled,
    dir,
    upload,
    serverless: parseBoolean(serverless.enabled, defaults.DEFAULT_SERVERLESS_ENABLED, 'serverless.enabled'),
  };
}

/** `plugin_attr.offload`: the worker-thread pool's size and bounds (src/plugins/offload.ts names the keys). */
function parseOffload(pluginAttr: unknown): OffloadPoolOptions {
  const given = isPlainObject(pluginAttr) ? pluginAttr.offload : undefined;
  try {
    return parseOffloadAttr(given);
  } catch (err) {
    if (err instanceof OffloadSettingError) throw new ConfigFieldError(err.field, err.reason);
    throw err;
  }
}

/** `plugin_attr.prometheus` (APISIX's keys); other plugins' attributes are accepted and ignored. */
function parsePrometheus(pluginAttr: unknown): PrometheusConfig | undefined {
  if (pluginAttr !== undefined && pluginAttr !== null && !isPlainObject(pluginAttr)) {
    throw new ConfigFieldError('plugin_attr', 'must be a mapping of plugin name: attributes');
  }
  const given = isPlainObject(pluginAttr) ? pluginAttr.prometheus : undefined;
  if (given !== undefined && given !== null && !isPlainObject(given)) {
    throw new ConfigFieldError('plugin_attr.prometheus', 'must be a mapping');
  }
  const attr = isPlainObject(given) ? given : {};
  rejectUnknownKeys(
    attr,
    ['export_addr', 'export_uri', 'metric_prefix', 'enable_export_server', 'refresh_interval'],
    'plugin_attr.prometheus',
  );
  if (!parseBoolean(attr.enable_export_server, true, 'plugin_attr.prometheus.enable_export_server')) return undefined;
  // APISIX writes the address as {ip, port}; "host:port" and {host, port} are accepted too.
  let addr: unknown = attr.export_addr ?? defaults.DEFAULT_PROMETHEUS_EXPORT_ADDR;
  if (isPlainObject(addr) && 'ip' in addr) {
    const { ip, ...rest } = addr;
    addr = { host: ip, ...rest };
  }
  const exportUri = parseNonEmptyString(
    attr.export_uri ?? defaults.DEFAULT_PROMETHEUS_EXPORT_URI,
    'plugin_attr.prometheus.export_uri',
  );
  if (!exportUri.startsWith('/'))
    throw new ConfigFieldError('plugin_attr.prometheus.export_uri', 'must start with "/"');
  const metricPrefix =
    attr.metric_prefix === undefined || attr.metric_prefix === null
      ? defaults.DEFAULT_PROMETHEUS_METRIC_PREFIX
      : String(attr.metric_prefix);
  if (!/^([a-zA-Z_:][a-zA-Z0-9_:]*)?$/.test(metricPrefix)) {
    throw new ConfigFieldError('plugin_attr.prometheus.metric_prefix', 'must be a Prometheus metric name prefix');
  }
  return {
    exportAddr: parseListenAddress(addr, 'plugin_attr.prometheus.export_addr', '127.0.0.1'),
    exportUri,
    metricPrefix,
    refreshIntervalMs: parsePositiveDurationMs(
      attr.refresh_interval ?? defaults.DEFAULT_PROMETHEUS_REFRESH_INTERVAL,
      'plugin_attr.prometheus.refresh_interval',
      '0 would render the whole exposition for every scrape',
    ),
  };
}

function parseSharedDicts(value: unknown): SharedDictConfig[] {
  const given = value ?? {};
  if (!isPlainObject(given)) throw new ConfigFieldError('shared_dicts', 'must be a mapping of name: size');
  // The health checks' dictionary always exists; the file may resize it.
  const sizes: Record<string, unknown> = { ...defaults.DEFAULT_SHARED_DICTS, ...given };
  return Object.entries(sizes).map(([name, size]) => {
    const field = `shared_dicts.${name}`;
    if (!/^[A-Za-z0-9_-]{1,48}$/.test(name)) {
      throw new ConfigFieldError(field, 'names must be 1-48 letters, digits, "_" or "-"');
    }
    let capacity: number;
    try {
      if (typeof size !== 'string' && typeof size !== 'number') throw new RangeError();
      capacity = parseDictSize(size);
    } catch {
      throw new ConfigFieldError(field, 'must be a size such as 10m, 512k or a byte count');
    }
    if (capacity < SHDICT_MIN_CAPACITY || capacity > SHDICT_MAX_CAPACITY) {
      throw new ConfigFieldError(field, `must be between 32k and 2g`);
    }
    return { name, capacity };
  });
}

/** Which store each role may use: a control plane writes etcd; a data plane reads etcd or a YAML file. */
function checkRoleAndStore(config: PalisadeConfig): void {
  const { role } = config.deployment;
  const { type, etcd } = config.store;
  if (type === 'etcd' && (etcd === undefined || etcd.hosts.length === 0)) {
    throw new ConfigFieldError('deployment.etcd.host', 'must name at least one etcd URL when store.type is etcd');
  }
  if (role === 'control_plane' && type !== 'etcd') {
    throw new ConfigFieldError('deployment.role', 'control_plane needs store.type etcd (the data planes read it)');
  }
  if (role === 'data_plane' && type === 'embedded') {
    throw new ConfigFieldError(
      'deployment.role',
      'data_plane reads its configuration from etcd or a standalone file; set store.type to etcd or standalone',
    );
  }
}

/** PALISADE_* variables override the file. Empty variables are ignored. */
function applyEnvironment(config: PalisadeConfig, env: NodeJS.ProcessEnv, cwd: string): void {
  const get = (name: string): string | undefined =>
    env[name] === undefined || env[name] === '' ? undefined : env[name];

  const listen = get('PALISADE_LISTEN');
  if (listen !== undefined) {
    config.proxy.listen = listen
      .split(',')
      .map((entry) => parseListenAddress(entry.trim(), 'PALISADE_LISTEN', '0.0.0.0'));
  }
  const adminListen = get('PALISADE_ADMIN_LISTEN');
  if (adminListen !== undefined) {
    config.admin.listen = parseListenAddress(adminListen, 'PALISADE_ADMIN_LISTEN', '0.0.0.0');
  }
  const adminKey = get('PALISADE_ADMIN_KEY');
  if (adminKey !== undefined) {
    if (adminKey.length < 16) throw new ConfigFieldError('PALISADE_ADMIN_KEY', 'must be at least 16 characters');
    // Replaces the configured admin-role keys; viewer keys stay.
    config.admin.keys = [{ key: adminKey, role: 'admin' }, ...config.admin.keys.filter((k) => k.role !== 'admin')];
  }
  const dataDir = get('PALISADE_DATA_DIR');
  if (dataDir !== undefined) config.store.dataDir = path.resolve(cwd, dataDir);
  const workers = get('PALISADE_WORKERS');
  if (workers !== undefined) config.workers = parseWorkers(workers, 'PALISADE_WORKERS');
  const backend = get('PALISADE_NATIVE_BACKEND');
  if (backend !== undefined) config.native.backend = parseEnum(backend, BACKENDS, 'PALISADE_NATIVE_BACKEND');
  const etcdHosts = get('PALISADE_ETCD_HOSTS');
  if (etcdHosts !== undefined) {
    const hosts = etcdHosts
      .split(',')
      .map((host) => host.trim())
      .filter((host) => host !== '')
      .map((host) => parseEtcdUrl(host, 'PALISADE_ETCD_HOSTS'));
    config.store.type = 'etcd';
    config.store.etcd = {
      prefix: defaults.DEFAULT_ETCD_PREFIX,
      timeoutMs: defaults.DEFAULT_ETCD_TIMEOUT_MS,
      ...config.store.etcd,
      hosts,
    };
  }
  const etcdPrefix = get('PALISADE_ETCD_PREFIX');
  if (etcdPrefix !== undefined && config.store.etcd !== undefined) {
    config.store.etcd.prefix = parseEtcdPrefix(etcdPrefix, 'PALISADE_ETCD_PREFIX');
  }
  const role = get('PALISADE_DEPLOYMENT_ROLE');
  if (role !== undefined) config.deployment.role = parseEnum(role, DEPLOYMENT_ROLES, 'PALISADE_DEPLOYMENT_ROLE');
  const controlListen = get('PALISADE_CONTROL_LISTEN');
  if (controlListen !== undefined) {
    config.control =
      controlListen === 'off'
        ? undefined
        : { listen: parseListenAddress(controlListen, 'PALISADE_CONTROL_LISTEN', '127.0.0.1') };
  }
  const level = get('PALISADE_LOG_LEVEL');
  if (level !== undefined) config.log.level = parseEnum(level, LOG_LEVELS, 'PALISADE_LOG_LEVEL');
}
