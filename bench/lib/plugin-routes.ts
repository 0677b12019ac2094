// The plugin routes that bench:plugins (part a, through the Admin API) and
// bench:instructions (a config snapshot) both measure, defined once so the
// two benchmarks always measure the same thing.

/** The consumer's key; requests to key-auth routes send it as `apikey`. */
export const BENCH_API_KEY = 'bench-api-key-0123456789';

/** The consumer every key-auth route finds. */
export const BENCH_CONSUMER = { username: 'bench', plugins: { 'key-auth': { key: BENCH_API_KEY } } };

/** limit-count `local` with a limit no benchmark reaches: the counting and the headers are measured, never a 503. */
const LIMIT_COUNT = { count: 1_000_000_000, time_window: 60, policy: 'local', rejected_code: 503 };

/** The typical risk-control route: key-auth + limit-count + prometheus. */
export const RISK_PLUGINS: Readonly<Record<string, object>> = {
  'key-auth': {},
  'limit-count': LIMIT_COUNT,
  prometheus: {},
};

export interface PluginRoute {
  name: string;
  uri: string;
  plugins?: Readonly<Record<string, object>>;
}

export const BARE_ROUTE: PluginRoute = { name: 'bare', uri: '/hello' };
export const RISK_ROUTE: PluginRoute = { name: 'risk', uri: '/risk', plugins: RISK_PLUGINS };

/** One route per plugin of the risk route, at /only/<plugin>. */
export const SINGLE_PLUGIN_ROUTES: readonly PluginRoute[] = Object.entries(RISK_PLUGINS).map(([name, conf]) => ({
  name,
  uri: `/only/${name}`,
  plugins: { [name]: conf },
}));

/** Routes measured only when asked for by name. */
export const EXTRA_ROUTES: readonly PluginRoute[] = [
  {
    name: 'limit-count-no-headers',
    uri: '/only/limit-count-no-headers',
    plugins: { 'limit-count': { ...LIMIT_COUNT, show_limit_quota_header: false } },
  },
  {
    name: 'ip-restriction',
    uri: '/only/ip-restriction',
    plugins: { 'ip-restriction': { whitelist: ['127.0.0.0/8'] } },
  },
];
