// Redis connections for plugins that keep state in Redis (limit-count's
// `redis` and `redis-cluster` policies), with APISIX's configuration fields
// (apisix/utils/redis-schema.lua).
//
// Clients are shared: every compiled configuration that names the same server
// (or cluster), database and credentials gets the same ioredis client, counted
// by reference, so a config reload does not reconnect. release() closes a
// client when its last user is retired.

import { Cluster, Redis } from 'ioredis';

import type { JsonSchema } from '../types';

/** Fields of `policy: "redis"`. */
export const redisSchema: JsonSchema = {
  type: 'object',
  properties: {
    redis_host: { type: 'string', minLength: 2 },
    redis_port: { type: 'integer', minimum: 1, default: 6379 },
    redis_username: { type: 'string', minLength: 1 },
    redis_password: { type: 'string', minLength: 0 },
    redis_database: { type: 'integer', minimum: 0, default: 0 },
    redis_timeout: { type: 'integer', minimum: 1, default: 1000 },
    redis_ssl: { type: 'boolean', default: false },
    redis_ssl_verify: { type: 'boolean', default: false },
  },
  required: ['redis_host'],
};

/** Fields of `policy: "redis-cluster"`. */
export const redisClusterSchema: JsonSchema = {
  type: 'object',
  properties: {
    redis_cluster_nodes: {
      type: 'array',
      minItems: 1,
      items: { type: 'string', minLength: 2, maxLength: 100 },
    },
    redis_password: { type: 'string', minLength: 0 },
    redis_timeout: { type: 'integer', minimum: 1, default: 1000 },
    redis_cluster_name: { type: 'string' },
    redis_cluster_ssl: { type: 'boolean', default: false },
    redis_cluster_ssl_verify: { type: 'boolean', default: false },
  },
  required: ['redis_cluster_nodes', 'redis_cluster_name'],
};

export interface RedisConf {
  redis_host?: string;
  redis_port?: number;
  redis_username?: string;
  redis_password?: string;
  redis_database?: number;
  redis_timeout?: number;
  redis_ssl?: boolean;
  redis_ssl_verify?: boolean;
  redis_cluster_nodes?: readonly string[];
  redis_cluster_name?: string;
  redis_cluster_ssl?: boolean;
  redis_cluster_ssl_verify?: boolean;
}

export type RedisClient = Redis | Cluster;

interface SharedClient {
  client: RedisClient;
  users: number;
}

const clients = new Map<string, SharedClient>();

/** "host:port" or "[v6]:port" as APISIX writes cluster nodes. */
function parseNode(node: string): { host: string; port: number } {
  const bracket = /^\[([^\]]+)\]:(\d+)$/.exec(node);
  if (bracket !== null) return { host: bracket[1], port: Number(bracket[2]) };
  const colon = node.lastIndexOf(':');
  if (colon <= 0) return { host: node, port: 6379 };
  return { host: node.slice(0, colon), port: Number(node.slice(colon + 1)) };
}

function identity(policy: 'redis' | 'redis-cluster', conf: RedisConf): string {
  if (policy === 'redis-cluster') {
    return JSON.stringify([
      policy,
      conf.redis_cluster_name,
      conf.redis_cluster_nodes,
      conf.redis_password,
      conf.redis_timeout,
      conf.redis_cluster_ssl,
      conf.redis_cluster_ssl_verify,
    ]);
  }
  return JSON.stringify([
    policy,
    conf.redis_host,
    conf.redis_port,
    conf.redis_database,
    conf.redis_username,
    conf.redis_password,
    conf.redis_timeout,
    conf.redis_ssl,
    conf.redis_ssl_verify,
  ]);
}

function connect(policy: 'redis' | 'redis-cluster', conf: RedisConf): RedisClient {
  const timeout = conf.redis_timeout ?? 1000;
  // Fail a command fast when the server is away instead of queueing it: the
  // plugin then answers 500 or degrades (allow_degradation) within redis_timeout.
  const common = {
    connectTimeout: timeout,
    commandTimeout: timeout,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: true,
    lazyConnect: false,
  };
  if (policy === 'redis-cluster') {
    const ssl = conf.redis_cluster_ssl === true;
    return new Cluster((conf.redis_cluster_nodes ?? []).map(parseNode), {
      redisOptions: {
        ...common,
        password: conf.redis_password || undefined,
        tls: ssl ? { rejectUnauthorized: conf.redis_cluster_ssl_verify === true } : undefined,
      },
      slotsRefreshTimeout: timeout,
      clusterRetryStrategy: (times) => Math.min(times * 100, 2000),
    });
  }
  const ssl = conf.redis_ssl === true;
  return new Redis({
    ...common,
    host: conf.redis_host,
    port: conf.redis_port ?? 6379,
    db: conf.redis_database ?? 0,
    username: conf.redis_username,
    password: conf.redis_password || undefined,
    tls: ssl ? { rejectUnauthorized: conf.redis_ssl_verify === true } : undefined,
    retryStrategy: (times) => Math.min(times * 100, 2000),
  });
}

export interface RedisHandle {
  readonly client: RedisClient;
  /** Give the client back; the last user closes it. */
  release(): void;
}

/** A shared client for this configuration (one per server, database and credentials). */
export function acquireRedis(policy: 'redis' | 'redis-cluster', conf: RedisConf): RedisHandle {
  const key = identity(policy, conf);
  let shared = clients.get(key);
  if (shared === undefined) {
    const client = connect(policy, conf);
    // Errors surface on the commands that fail; an unhandled 'error' event would crash the worker.
    client.on('error', () => undefined);
    shared = { client, users: 0 };
    clients.set(key, shared);
  }
  shared.users++;
  const entry = shared;
  let released = false;
  return {
    client: entry.client,
    release(): void {
      if (released) return;
      released = true;
      entry.users--;
      if (entry.users === 0) {
        clients.delete(key);
        entry.client.disconnect();
      }
    },
  };
}

/** Close every client (tests, shutdown). */
export function closeAllRedis(): void {
  for (const shared of clients.values()) shared.client.disconnect();
  clients.clear();
}
