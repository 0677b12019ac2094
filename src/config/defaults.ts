// Every configuration default in one place. conf/config.yaml documents the
// same values; keep the two in step.

export const DEFAULT_PROXY_LISTEN = '0.0.0.0:9080';
export const DEFAULT_ADMIN_LISTEN = '127.0.0.1:9180';
/** APISIX's default `allow_admin` (127.0.0.0/24), and IPv6 loopback. */
export const DEFAULT_ADMIN_ALLOW = ['127.0.0.0/24', '::1/128'];
export const DEFAULT_ADMIN_MAX_BODY_BYTES = 1572864; // 1.5 MiB, APISIX's client_max_body_size for the Admin API
export const DEFAULT_MAX_HEAD_BYTES = 32768;
export const DEFAULT_MAX_BODY_BYTES = 0;
export const DEFAULT_HEAD_TIMEOUT_MS = 60_000;
export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
export const DEFAULT_DRAIN_TIMEOUT_MS = 30_000;
export const DEFAULT_WORKERS = 1;
export const DEFAULT_NATIVE_BACKEND = 'ffi';
export const DEFAULT_STORE_TYPE = 'embedded';
export const DEFAULT_DATA_DIR = './data';
export const DEFAULT_STANDALONE_FILE = 'conf/apisix.yaml';
export const DEFAULT_LOG_LEVEL = 'info';
export const DEFAULT_DEPLOYMENT_ROLE = 'traditional';
export const DEFAULT_ETCD_PREFIX = '/apisix';
export const DEFAULT_ETCD_TIMEOUT_MS = 5_000;
export const DEFAULT_CONTROL_LISTEN = '127.0.0.1:9090';
/** The dictionary active health checks keep their state in (APISIX's lua_shared_dict of the same name). */
export const HEALTHCHECK_DICT = 'upstream-healthcheck';
/** Always created (entries in config.yaml add to these or resize them); the plugin ones are APISIX's sizes. */
export const DEFAULT_SHARED_DICTS: Readonly<Record<string, string>> = {
  [HEALTHCHECK_DICT]: '10m',
  'plugin-limit-count': '10m',
  'plugin-limit-req': '10m',
  'plugin-limit-conn': '10m',
  'plugin-api-breaker': '10m',
};
export const DEFAULT_PLUGIN_UPLOAD = false;
export const DEFAULT_SERVERLESS_ENABLED = false;
export const DEFAULT_PROMETHEUS_EXPORT_ADDR = '127.0.0.1:9091';
export const DEFAULT_PROMETHEUS_EXPORT_URI = '/apisix/prometheus/metrics';
export const DEFAULT_PROMETHEUS_METRIC_PREFIX = 'apisix_';
/** Seconds a rendering of the metrics is served before a scrape renders anew (APISIX's default). */
export const DEFAULT_PROMETHEUS_REFRESH_INTERVAL = 15;
