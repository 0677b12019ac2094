// The CRUD side of the Admin API: one function per method over a resource,
// each returning the status and body APISIX v3 sends (apisix/admin/resource.lua
// and v3_adapter.lua). Errors are thrown as PalisadeError and rendered by the
// server.

import { PAL_ERR_ADMIN_BAD_CONFIG, PAL_ERR_ADMIN_METHOD, type PalisadeError } from '../core/errors';
import type { PluginCatalog } from '../schema/catalog';
import { singular, validateResource } from '../schema/index';
import { isPlainObject, notAnObjectMessage, type JsonObject } from '../schema/json';
import { REFERENCES, withStringReferences } from '../schema/references';
import type { ConfigStore, PutOptions, ResourceName, StoredItem } from '../store/types';
import { listItems } from './list';
import { mergePatch, replaceAtPath } from './patch';

export interface Reply {
  status: number;
  body: unknown;
  /** Send `body` (a string) as it is, as text/plain, instead of as JSON (APISIX's `core.response.exit(200, "done")`). */
  text?: boolean;
}

export interface ResourceContext {
  store: ConfigStore;
  plugins?: PluginCatalog;
}

export interface ResourceRequest {
  method: string;
  resource: ResourceName;
  id: string | undefined;
  subPath: string[];
  query: URLSearchParams;
  /** The parsed JSON body for PUT, POST and PATCH. */
  body: unknown;
}

const ALL = ['GET', 'PUT', 'POST', 'DELETE', 'PATCH'];
const NO_POST = ['GET', 'PUT', 'DELETE', 'PATCH'];

const allowedMethods: Record<ResourceName, readonly string[]> = {
  routes: ALL,
  services: ALL,
  upstreams: ALL,
  ssls: ALL,
  consumers: ['GET', 'PUT', 'DELETE'],
  consumer_groups: NO_POST,
  global_rules: NO_POST,
  plugin_configs: NO_POST,
  plugin_metadata: ['GET', 'PUT', 'DELETE'],
};

const deleteRefusal: Partial<Record<ResourceName, string>> = {
  upstreams: 'can not delete this upstream',
  services: 'can not delete this service directly',
  plugin_configs: 'can not delete this plugin config',
  consumer_groups: 'can not delete this consumer group',
};

const FORBIDDEN_FIELDS = ['create_time', 'update_time'];

function keyNotFound(): Reply {
  return { status: 404, body: { message: 'Key not found' } };
}

function badRequest(message: string): PalisadeError {
  return PAL_ERR_ADMIN_BAD_CONFIG(message);
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

function itemEnvelope(item: StoredItem): JsonObject {
  return { key: item.key, value: item.value, createdIndex: item.createdIndex, modifiedIndex: item.modifiedIndex };
}

function parseTtl(query: URLSearchParams): number | undefined {
  const raw = query.get('ttl');
  if (raw === null) return undefined;
  const ttl = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(ttl) || ttl <= 0)
    throw badRequest('invalid argument ttl: should be a number');
  return ttl;
}

function forbiddenField(field: string): PalisadeError {
  // APISIX's message has two spaces after the colon.
  return badRequest(`the property is forbidden:  ${field}`);
}

function checkForbidden(body: JsonObject): void {
  for (const field of FORBIDDEN_FIELDS) {
    if (body[field] !== undefined) throw forbiddenField(field);
  }
}

function requireObject(body: unknown): JsonObject {
  if (!isPlainObject(body)) throw badRequest(notAnObjectMessage(body));
  return body;
}

function validateOrThrow(ctx: ResourceContext, resource: ResourceName, value: JsonObject, id: string): void {
  const err = validateResource(resource, value, { store: ctx.store, plugins: ctx.plugins, id });
  if (err !== undefined) throw badRequest(err);
}

/** The field that names an item: `username` for consumers, `id` for the rest. */
function idField(resource: ResourceName): string {
  return resource === 'consumers' ? 'username' : 'id';
}

function missingId(resource: ResourceName): PalisadeError {
  return badRequest(resource === 'consumers' ? 'missing username' : `missing ${singular(resource)} id`);
}

/** Give the body its id (the URL's), refusing a body that names a different one. */
function bodyWithId(resource: ResourceName, body: JsonObject, id: string): JsonObject {
  const field = idField(resource);
  if (body[field] !== undefined && String(body[field]) !== id) {
    throw badRequest(resource === 'consumers' ? 'wrong username' : `wrong ${singular(resource)} id`);
  }
  return { ...body, [field]: id };
}

async function save(
  ctx: ResourceContext,
  resource: ResourceName,
  id: string,
  value: JsonObject,
  options: PutOptions,
): Promise<Reply> {
  const existing = ctx.store.get(resource, id);
  const now = nowSeconds();
  const stored: JsonObject = {
    ...withStringReferences(resource, value),
    create_time: (existing?.value.create_time as number | undefined) ?? now,
    update_time: now,
  };
  const item = await ctx.store.put(resource, id, stored, options);
  return { status: existing ? 200 : 201, body: { key: item.key, value: item.value } };
}

async function put(ctx: ResourceContext, req: ResourceRequest): Promise<Reply> {
  const body = requireObject(req.body);
  checkForbidden(body);
  let id = req.id;
  if (id === undefined && req.resource === 'consumers' && typeof body.username === 'string') id = body.username;
  if (id === undefined) throw missingId(req.resource);
  const ttl = parseTtl(req.query);
  const value = bodyWithId(req.resource, body, id);
  validateOrThrow(ctx, req.resource, value, id);
  return save(ctx, req.resource, id, value, { ttl });
}

async function post(ctx: ResourceContext, req: ResourceRequest): Promise<Reply> {
  if (req.id !== undefined) throw PAL_ERR_ADMIN_METHOD(`not supported \`POST\` method with an id; use PUT`);
  const body = requireObject(req.body);
  checkForbidden(body);
  if (body.id !== undefined) throw badRequest(`wrong ${singular(req.resource)} id, do not need it`);
  const ttl = parseTtl(req.query);
  // Validate before allocating an id, so a rejected body does not use one up.
  validateOrThrow(ctx, req.resource, body, '');
  const id = await ctx.store.nextId();
  const value = { ...body, id };
  return save(ctx, req.resource, id, value, { ttl });
}

async function patch(ctx: ResourceContext, req: ResourceRequest): Promise<Reply> {
  const id = req.id;
  if (id === undefined) throw missingId(req.resource);
  const ttl = parseTtl(req.query);
  const existing = ctx.store.get(req.resource, id);
  if (!existing) return keyNotFound();
  let merged: JsonObject;
  if (req.subPath.length > 0) {
    if (FORBIDDEN_FIELDS.includes(req.subPath[0])) throw forbiddenField(req.subPath[0]);
    if (req.subPath.length === 1 && req.subPath[0] === idField(req.resource) && String(req.body) !== id) {
      throw badRequest(`wrong ${singular(req.resource)} id`);
    }
    const replaced = replaceAtPath(existing.value, req.subPath, req.body);
    if (typeof replaced === 'string') throw badRequest(replaced);
    merged = replaced;
  } else {
    const body = requireObject(req.body);
    checkForbidden(body);
    merged = mergePatch(existing.value, bodyWithId(req.resource, body, id)) as JsonObject;
  }
  merged[idField(req.resource)] = id;
  validateOrThrow(ctx, req.resource, merged, id);
  const stored = { ...withStringReferences(req.resource, merged), update_time: nowSeconds() };
  // Compare-and-swap: a concurrent write between our read and this put is a conflict, not a lost update.
  const item = await ctx.store.put(req.resource, id, stored, { ttl, prevIndex: existing.modifiedIndex });
  return { status: 200, body: { key: item.key, value: item.value } };
}

/**
 * GET reads the store's source when it has one that can be out of reach (etcd),
 * as APISIX's Admin API reads etcd: an outage is a 503, not the in-memory copy
 * shown as current. Other stores answer from memory, which is their source.
 */
async function get(ctx: ResourceContext, req: ResourceRequest): Promise<Reply> {
  const { store } = ctx;
  if (req.id === undefined) {
    const items = store.fetchList ? await store.fetchList(req.resource) : store.list(req.resource);
    const result = listItems(items, req.query);
    if (!('list' in result)) throw result;
    return { status: 200, body: { list: result.list.map(itemEnvelope), total: result.total } };
  }
  const item = store.fetch ? await store.fetch(req.resource, req.id) : store.get(req.resource, req.id);
  return item ? { status: 200, body: itemEnvelope(item) } : keyNotFound();
}

function firstReferrer(ctx: ResourceContext, target: ResourceName, id: string): string | undefined {
  for (const ref of REFERENCES) {
    if (ref.to !== target) continue;
    for (const item of ctx.store.list(ref.from)) {
      const value = item.value[ref.field];
      if (value !== undefined && String(value) === id) {
        const name = item.value[idField(ref.from)];
        return `${singular(ref.from)} [${String(name)}]`;
      }
    }
  }
  return undefined;
}

async function remove(ctx: ResourceContext, req: ResourceRequest): Promise<Reply> {
  const id = req.id;
  if (id === undefined) throw missingId(req.resource);
  const existing = ctx.store.get(req.resource, id);
  if (!existing) return keyNotFound();
  const refusal = deleteRefusal[req.resource];
  if (refusal && req.query.get('force') !== 'true') {
    const referrer = firstReferrer(ctx, req.resource, id);
    if (referrer) throw badRequest(`${refusal}, ${referrer} is still using it now`);
  }
  const deleted = await ctx.store.delete(req.resource, id);
  if (!deleted) return keyNotFound();
  // The store's key: under etcd it carries the configured prefix, as APISIX reports it.
  return { status: 200, body: { deleted: '1', key: existing.key } };
}

const READ_ONLY_MESSAGE = 'the configuration is read-only';

export async function handleResource(ctx: ResourceContext, req: ResourceRequest): Promise<Reply> {
  const method = req.method === 'HEAD' ? 'GET' : req.method;
  if (!allowedMethods[req.resource].includes(method)) {
    throw PAL_ERR_ADMIN_METHOD(`not supported \`${method}\` method for ${singular(req.resource)}`);
  }
  if (method !== 'GET' && ctx.store.readOnly) throw badRequest(ctx.store.readOnlyReason ?? READ_ONLY_MESSAGE);
  if (req.subPath.length > 0 && method !== 'PATCH' && method !== 'GET') {
    throw badRequest(`sub path is only supported by PATCH: ${req.subPath.join('/')}`);
  }
  switch (method) {
    case 'GET':
      return get(ctx, req);
    case 'PUT':
      return put(ctx, req);
    case 'POST':
      return post(ctx, req);
    case 'PATCH':
      return patch(ctx, req);
    default:
      return remove(ctx, req);
  }
}
