// Resource types in APISIX v3 field names. The Admin API validates bodies
// against the JSON Schemas in src/schema/ (ajv); these types are the static
// side of the same schemas. Only the fields Palisade reads are spelled out;
// stored objects keep every validated field.

export type ResourceId = string;

export interface UpstreamNode {
  host: string;
  port: number;
  weight: number;
  priority?: number;
  metadata?: Record<string, unknown>;
}

export interface UpstreamTimeout {
  connect: number; // seconds (fractions allowed), as APISIX
  send: number;
  read: number;
}

export interface KeepalivePool {
  size: number;
  idle_timeout: number; // seconds
  requests: number;
}

export interface Upstream {
  id?: ResourceId;
  name?: string;
  desc?: string;
  labels?: Record<string, string>;
  /** `{"host:port": weight}` or a node list; normalised to a list by the data plane. */
  nodes?: Record<string, number> | UpstreamNode[];
  type?: 'roundrobin' | 'chash' | 'least_conn' | 'ewma';
  hash_on?: 'vars' | 'header' | 'cookie' | 'consumer' | 'vars_combinations';
  key?: string;
  retries?: number;
  retry_timeout?: number;
  timeout?: UpstreamTimeout;
  pass_host?: 'pass' | 'node' | 'rewrite';
  upstream_host?: string;
  scheme?: 'http' | 'https' | 'grpc' | 'grpcs' | 'tcp' | 'tls' | 'udp' | 'kafka';
  keepalive_pool?: KeepalivePool;
  checks?: Record<string, unknown>;
  create_time?: number;
  update_time?: number;
}

export type PluginMap = Record<string, Record<string, unknown>>;

/** A lua-resty-expr expression: `[var, op, val]`, `[var, "!", op, val]`, or nested with AND/OR heads. */
export type VarsExpr = unknown[];

export interface Route {
  id?: ResourceId;
  name?: string;
  desc?: string;
  labels?: Record<string, string>;
  uri?: string;
  uris?: string[];
  host?: string;
  hosts?: string[];
  remote_addr?: string;
  remote_addrs?: string[];
  methods?: string[];
  priority?: number;
  vars?: VarsExpr;
  filter_func?: string;
  plugins?: PluginMap;
  plugin_config_id?: ResourceId;
  upstream?: Upstream;
  upstream_id?: ResourceId;
  service_id?: ResourceId;
  timeout?: UpstreamTimeout;
  enable_websocket?: boolean;
  status?: 0 | 1;
  create_time?: number;
  update_time?: number;
}

export interface Service {
  id?: ResourceId;
  name?: string;
  desc?: string;
  labels?: Record<string, string>;
  hosts?: string[];
  plugins?: PluginMap;
  upstream?: Upstream;
  upstream_id?: ResourceId;
  enable_websocket?: boolean;
  create_time?: number;
  update_time?: number;
}

export interface Consumer {
  username: string;
  desc?: string;
  labels?: Record<string, string>;
  plugins?: PluginMap;
  group_id?: ResourceId;
  create_time?: number;
  update_time?: number;
}

export interface PluginBundle {
  id?: ResourceId;
  desc?: string;
  labels?: Record<string, string>;
  plugins: PluginMap;
  create_time?: number;
  update_time?: number;
}

export type ConsumerGroup = PluginBundle;
export type GlobalRule = PluginBundle;
export type PluginConfig = PluginBundle;

export interface Ssl {
  id?: ResourceId;
  cert?: string;
  key?: string;
  certs?: string[];
  keys?: string[];
  snis?: string[];
  sni?: string;
  type?: 'server' | 'client';
  status?: 0 | 1;
  create_time?: number;
  update_time?: number;
}
