import type { BackendName } from '../native/backend';
import type { LogLevel } from '../core/log';

export interface ListenAddress {
  host: string;
  port: number;
}

export type AdminRole = 'admin' | 'viewer';

export interface AdminKeyConfig {
  key: string;
  role: AdminRole;
}

export type StoreType = 'embedded' | 'standalone';

/** Request limits of the proxy, in the units the data plane takes. */
export interface ProxyLimits {
  maxHeadBytes: number;
  /** 0 means unlimited. */
  maxBodyBytes: number;
  headTimeoutMs: number;
  idleTimeoutMs: number;
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
  store: {
    type: StoreType;
    dataDir: string;
    standaloneFile: string;
  };
  log: { level: LogLevel };
}
