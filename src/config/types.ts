import type { LogLevel } from '../core/log';
import type { BackendName } from '../native/backend';
import type { OffloadPoolOptions } from '../plugins/offload';

export interface ListenAddress {
  host: string;
  port: number;
}

export type AdminRole = 'admin' | 'viewer';

export interface AdminKeyConfig {
  key: string;
  role: AdminRole;
}

export type StoreType = 'embedded' | 'standalone' | 'etcd';

/**
 * APISIX's deployment roles: `traditional` runs the proxy and the Admin API,
 * `data_plane` only the proxy (the configuration is read-only), and
 * `control_plane` only the Admin API.
 */
export type DeploymentRole = 'traditional' | 'data_plane' | 'control_plane';

export interface EtcdConfig {
  /** Client URLs, e.g. `http://127.0.0.1:2379`. */
  hosts: string[];
  prefix: string;
  /** Deadline of one etcd request. */
  timeoutMs: number;
  user?: string;
  password?: string;
}

/** A shared dictionary named in config.yaml (`shared_dicts`), opened by every process. */
export interface SharedDictConfig {
  name: string;
  /** Bytes. */
  capacity: number;
}

/** Limits of the proxy (`proxy.limits`), in the units the data plane takes. */
export interface ProxyLimits {
  maxHeadBytes: number;
  /** 0 means unlimited. */
  maxBodyBytes: number;
  headTimeoutMs: number;
  idleTimeoutMs: number;
  /**
   * How long a compiled plugin configuration outlives the last route table
   * using it before the plugin's release() runs (the DataPlane's
   * releaseGraceMs); undefined: the longest read timeout, at least 60 s.
   */
  pluginReleaseGraceMs: number | undefined;
}

/**
 * The configuration after defaults, the file and environment overrides are
 * merged and validated. Paths are absolute.
 */
export interface PalisadeConfig {
  /** The file this was read from, or undefined when running on defaults only. */
  configPath: string | undefined;
  proxy: {
    listen: ListenAddress[];
    limits: ProxyLimits;
    /** How long in-flight requests may take to finish on stop or reload. */
    drainTimeoutMs: number;
  };
  /** Number of data-plane worker processes (`auto` already resolved). */
  workers: number;
  native: { backend: BackendName };
  admin: {
    listen: ListenAddress;
    /** Empty means: generate (or reuse) a key in the data dir at start. */
    keys: AdminKeyConfig[];
    allow: string[];
    maxBodyBytes: number;
  };
  deployment: { role: DeploymentRole };
  store: {
    type: StoreType;
    dataDir: string;
    standaloneFile: string;
    /** Set when `type` is `etcd`. */
    etcd: EtcdConfig | undefined;
  };
  /** The control API (`GET /v1/healthcheck`, ...); undefined when disabled. */
  control: { listen: ListenAddress } | undefined;
  sharedDicts: SharedDictConfig[];
  plugins: PluginsConfig;
  /** The prometheus metrics listener (config.yaml `plugin_attr.prometheus`), run by the agent; undefined when off. */
  prometheus: PrometheusConfig | undefined;
  /** Each worker's offload thread pool (config.yaml `plugin_attr.offload`); empty for the defaults. */
  offload: OffloadPoolOptions;
  log: { level: LogLevel };
}

/** APISIX's `plugin_attr.prometheus`: where the agent serves the merged metrics of every worker. */
export interface PrometheusConfig {
  exportAddr: ListenAddress;
  exportUri: string;
  /** Prepended to every metric name (`apisix_http_status`, ...). */
  metricPrefix: string;
  /** How long (ms) one rendering is served to scrapes before a scrape renders anew (`refresh_interval`). */
  refreshIntervalMs: number;
}

/** Which plugins the gateway loads (config.yaml `plugins`, `plugin_dir`, `plugin_upload`, `serverless`). */
export interface PluginsConfig {
  /** Names to enable; undefined enables every built-in and every plugin in `dir`. */
  enabled: string[] | undefined;
  /** Custom plugins (`.js` files), absolute; undefined for none. */
  dir: string | undefined;
  /** Whether PUT /apisix/admin/plugins/upload/{name} is served (admin keys only; needs `dir`). */
  upload: boolean;
  /** Whether serverless-pre-function and serverless-post-function are loaded (they run code from the Admin API). */
  serverless: boolean;
}
