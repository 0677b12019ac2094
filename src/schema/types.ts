// Resource types in APISIX v3 field names, derived from the JSON Schemas in
// src/schema/definitions.ts that the Admin API validates bodies against: a
// field added to a schema is a field of its type. Stored objects carry what
// was validated, without schema defaults.

import type { Static } from '@sinclair/typebox';
import type {
  consumerSchema,
  idSchema,
  keepalivePoolSchema,
  pluginBundleSchema,
  pluginMetadataSchema,
  pluginsSchema,
  routeSchema,
  serviceSchema,
  sslSchema,
  timeoutSchema,
  upstreamNodeSchema,
  upstreamSchema,
  varsSchema,
} from './definitions';

export type ResourceId = Static<typeof idSchema>;
export type UpstreamNode = Static<typeof upstreamNodeSchema>;
export type UpstreamTimeout = Static<typeof timeoutSchema>;
export type KeepalivePool = Static<typeof keepalivePoolSchema>;
export type Upstream = Static<typeof upstreamSchema>;
export type PluginMap = Static<typeof pluginsSchema>;
export type VarsExpr = Static<typeof varsSchema>;
export type Route = Static<typeof routeSchema>;
export type Service = Static<typeof serviceSchema>;
export type Consumer = Static<typeof consumerSchema>;
export type PluginBundle = Static<typeof pluginBundleSchema>;
export type ConsumerGroup = PluginBundle;
export type GlobalRule = PluginBundle;
export type PluginConfig = PluginBundle;
export type PluginMetadata = Static<typeof pluginMetadataSchema>;
export type Ssl = Static<typeof sslSchema>;

// The field names of each resource type, in schema order. test/schema pins
// each list to its type's keys (at compile time) and to its schema's
// properties (at run time).

/** The fields every named resource starts with (definitions.ts: identityFields). */
const identityFieldNames = ['id', 'name', 'desc', 'labels'] as const;

/** The fields the Admin API stamps on every stored item (definitions.ts: timestampFields). */
const timestampFieldNames = ['create_time', 'update_time'] as const;

export const upstreamFields = [
  ...identityFieldNames,
  'nodes',
  'service_name',
  'discovery_type',
  'discovery_args',
  'type',
  'hash_on',
  'key',
  'retries',
  'retry_timeout',
  'timeout',
  'pass_host',
  'upstream_host',
  'scheme',
  'keepalive_pool',
  'checks',
  'tls',
  ...timestampFieldNames,
] as const satisfies readonly (keyof Upstream)[];

export const routeFields = [
  ...identityFieldNames,
  'uri',
  'uris',
  'host',
  'hosts',
  'remote_addr',
  'remote_addrs',
  'methods',
  'priority',
  'vars',
  'filter_func',
  'plugins',
  'plugin_config_id',
  'upstream',
  'upstream_id',
  'service_id',
  'timeout',
  'enable_websocket',
  'status',
  ...timestampFieldNames,
] as const satisfies readonly (keyof Route)[];

export const serviceFields = [
  ...identityFieldNames,
  'hosts',
  'plugins',
  'upstream',
  'upstream_id',
  'enable_websocket',
  ...timestampFieldNames,
] as const satisfies readonly (keyof Service)[];

export const consumerFields = [
  'username',
  'desc',
  'labels',
  'plugins',
  'group_id',
  ...timestampFieldNames,
] as const satisfies readonly (keyof Consumer)[];

export const pluginBundleFields = [
  ...identityFieldNames,
  'plugins',
  ...timestampFieldNames,
] as const satisfies readonly (keyof PluginBundle)[];

export const sslFields = [
  'id',
  'desc',
  'labels',
  'type',
  'cert',
  'key',
  'certs',
  'keys',
  'sni',
  'snis',
  'client',
  'ssl_protocols',
  'status',
  ...timestampFieldNames,
] as const satisfies readonly (keyof Ssl)[];

export const pluginMetadataFields = ['id'] as const satisfies readonly (keyof PluginMetadata)[];
