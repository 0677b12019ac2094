// The APISIX v3 compatible Admin API, under /apisix/admin. Not on the hot
// path, so it is plain node:http: read the body (bounded), check the source
// address and the key, route by path, answer JSON with `X-API-VERSION: v3`.

import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DEFAULT_ADMIN_ALLOW, DEFAULT_ADMIN_MAX_BODY_BYTES } from '../config/defaults';
import {
  PAL_ERR_ADMIN_BAD_CONFIG,
  PAL_ERR_ADMIN_METHOD,
  PAL_ERR_ADMIN_NOT_FOUND,
  PAL_ERR_ADMIN_TOO_LARGE,
  PalisadeError,
} from '../core/errors';
import { logger } from '../core/log';
import { emptyPluginCatalog, type PluginCatalog, type PluginKind } from '../schema/catalog';
import { resourceSchemas, validateResource } from '../schema/index';
import { RESOURCES, type ConfigStore, type ResourceName } from '../store/types';
import { AdminAuth, presentedKey, type AdminKey } from './auth';
import { handleResource, type Reply } from './resources';

export type { AdminKey } from './auth';
export type { PluginCatalog } from '../schema/catalog';

const log = logger('admin');

const PREFIX = '/apisix/admin';

export interface AdminOptions {
  host: string;
  port: number;
  store: ConfigStore;
  keys: AdminKey[];
  /** CIDRs allowed to reach the Admin API; default APISIX's allow_admin 127.0.0.0/24, and ::1/128. */
  allow?: string[];
  plugins?: PluginCatalog;
  /** PUT /plugins/reload: reload the plugins in this process and every worker; resolves when asked of all. */
  reloadPlugins?: () => Promise<void>;
  /**
   * PUT /plugins/upload/{name} (config `plugin_upload: true`): check and install a
   * plugin module's source, then reload. Resolves with an error text, or undefined
   * when the plugin was installed. Absent: uploads are refused.
   */
  uploadPlugin?: (name: string, source: string) => Promise<string | undefined>;
  /** Largest accepted request body; default 1.5 MiB. */
  maxBodyBytes?: number;
}

class BodyTooLarge extends Error {
  constructor(readonly size: number) {
    super('request body too large');
  }
}

function isResourceName(name: string): name is ResourceName {
  return (RESOURCES as readonly string[]).includes(name);
}

/** `route` or `routes` -> `routes`, for the schema endpoints. */
function resourceFromSchemaPath(name: string): ResourceName | undefined {
  if (isResourceName(name)) return name;
  if (isResourceName(name + 's')) return (name + 's') as ResourceName;
  return undefined;
}

function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(new BodyTooLarge(declared));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.pause();
        reject(new BodyTooLarge(size));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** Methods whose request body is read and parsed as JSON. */
function carriesBody(method: string): boolean {
  return method === 'PUT' || method === 'POST' || method === 'PATCH';
}

/** Refuse anything but GET and HEAD on a read-only endpoint (`what` names it in the message). */
function requireReadMethod(method: string, what: string): void {
  if (method !== 'GET' && method !== 'HEAD')
    throw PAL_ERR_ADMIN_METHOD(`not supported \`${method}\` method for ${what}`);
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw PAL_ERR_ADMIN_BAD_CONFIG(`invalid path segment: ${segment}`);
  }
}

function parseJsonBody(raw: string): unknown {
  if (raw.trim() === '') throw PAL_ERR_ADMIN_BAD_CONFIG('invalid request body: empty request body');
  try {
    return JSON.parse(raw);
  } catch (err) {
    throw PAL_ERR_ADMIN_BAD_CONFIG(`invalid request body: ${(err as Error).message}`);
  }
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headOnly: boolean,
  close = false,
  text = false,
): void {
  const payload = body === undefined ? '' : text ? String(body) : JSON.stringify(body);
  const headers: Record<string, string | number> = {
    'Content-Type': text ? 'text/plain' : 'application/json',
    'Content-Length': Buffer.byteLength(payload),
    'X-API-VERSION': 'v3',
    Server: 'Palisade',
  };
  if (close) headers.Connection = 'close';
  res.writeHead(status, headers);
  res.end(headOnly ? undefined : payload);
}

export class AdminServer {
  readonly #options: AdminOptions;
  readonly #auth: AdminAuth;
  readonly #plugins: PluginCatalog;
  readonly #maxBodyBytes: number;
  #server: Server | undefined;

  constructor(options: AdminOptions) {
    this.#options = options;
    this.#auth = new AdminAuth(options.keys, options.allow ?? DEFAULT_ADMIN_ALLOW);
    this.#plugins = options.plugins ?? emptyPluginCatalog;
    this.#maxBodyBytes = options.maxBodyBytes ?? DEFAULT_ADMIN_MAX_BODY_BYTES;
  }

  listen(): Promise<{ address: string; port: number }> {
    for (const key of AdminAuth.publishedDefaultsIn(this.#options.keys)) {
      log.warn(
        `the ${key.role} key is APISIX's published default; it is accepted from loopback only. Configure a random key.`,
      );
    }
    if (this.#options.keys.length === 0) log.warn('no Admin API keys are configured; every request will get 401');
    const server = createServer((req, res) => {
      this.#handle(req, res).catch((err: Error) => {
        log.error('admin request failed', { error: err.message });
        if (!res.headersSent) sendJson(res, 500, { error_msg: 'internal error' }, false);
        else res.destroy();
      });
    });
    this.#server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#options.port, this.#options.host, () => {
        server.off('error', reject);
        const address = server.address() as AddressInfo;
        log.info('Admin API listening', { address: address.address, port: address.port });
        resolve({ address: address.address, port: address.port });
      });
    });
  }

  close(): Promise<void> {
    const server = this.#server;
    if (!server) return Promise.resolve();
    this.#server = undefined;
    return new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const headOnly = method === 'HEAD';
    const address = req.socket.remoteAddress ?? '';
    if (!this.#auth.isAllowed(address)) {
      req.resume();
      sendJson(res, 403, { error_msg: `access to the Admin API from ${address} is not allowed` }, headOnly);
      return;
    }
    const url = new URL(req.url ?? '/', 'http://admin');
    const key = presentedKey(req.headers['x-api-key'], url.searchParams, req.headers.cookie);
    const denied = this.#auth.check(key, method, address);
    if (denied) {
      req.resume();
      sendJson(res, denied.status, denied.body(), headOnly);
      return;
    }
    let reply: Reply;
    try {
      const body = carriesBody(method) ? await readBody(req, this.#maxBodyBytes) : '';
      reply = await this.#route(method, url, body, address);
    } catch (err) {
      if (err instanceof BodyTooLarge) {
        const error = PAL_ERR_ADMIN_TOO_LARGE(
          `request size ${err.size} is greater than the maximum size ${this.#maxBodyBytes} allowed`,
        );
        // The rest of the body is not read; closing is cheaper than draining it.
        sendJson(res, error.status, error.body(), headOnly, true);
        return;
      }
      if (!(err instanceof PalisadeError)) throw err;
      reply = { status: err.status, body: err.body() };
    }
    sendJson(res, reply.status, reply.body, headOnly, false, reply.text === true);
  }

  async #route(method: string, url: URL, rawBody: string, address: string): Promise<Reply> {
    const path = url.pathname;
    if (path !== PREFIX && !path.startsWith(PREFIX + '/')) throw PAL_ERR_ADMIN_NOT_FOUND('not found');
    const segments = path
      .slice(PREFIX.length)
      .split('/')
      .filter((s) => s !== '')
      .map(decodeSegment);
    if (segments.length === 0) {
      if (method === 'HEAD' || method === 'GET') return { status: 200, body: undefined };
      throw PAL_ERR_ADMIN_NOT_FOUND('not found');
    }
    const [first, ...rest] = segments;
    if (first === 'schema') return this.#schemaEndpoint(method, rest, rawBody, url.searchParams);
    if (first === 'plugins') return this.#pluginsEndpoint(method, rest, url.searchParams, rawBody, address);
    if (!isResourceName(first)) throw PAL_ERR_ADMIN_NOT_FOUND(`Unsupported resource type: ${first}`);
    const [id, ...subPath] = rest;
    return handleResource(
      { store: this.#options.store, plugins: this.#options.plugins },
      {
        method,
        resource: first,
        id,
        subPath,
        query: url.searchParams,
        body: carriesBody(method) ? parseJsonBody(rawBody) : undefined,
      },
    );
  }

  #schemaEndpoint(method: string, rest: string[], rawBody: string, query: URLSearchParams): Reply {
    if (rest[0] === 'validate' && rest.length === 2) {
      if (method !== 'POST') throw PAL_ERR_ADMIN_METHOD(`not supported \`${method}\` method for schema validation`);
      const resource = resourceFromSchemaPath(rest[1]);
      if (!resource) throw PAL_ERR_ADMIN_NOT_FOUND(`Unsupported resource type: ${rest[1]}`);
      const err = validateResource(resource, parseJsonBody(rawBody), {
        store: this.#options.store,
        plugins: this.#options.plugins,
        checkReferences: false,
      });
      if (err !== undefined) throw PAL_ERR_ADMIN_BAD_CONFIG(err);
      return { status: 200, body: {} };
    }
    requireReadMethod(method, 'schema');
    if (rest[0] === 'plugins' && rest.length === 2) return this.#pluginSchema(rest[1], query);
    const resource = rest.length === 1 ? resourceFromSchemaPath(rest[0]) : undefined;
    if (!resource) throw PAL_ERR_ADMIN_NOT_FOUND(`Unsupported resource type: ${rest.join('/')}`);
    return { status: 200, body: resourceSchemas[resource] };
  }

  /** GET /plugins/{name} and /schema/plugins/{name} (apisix/admin/plugins.lua: get). */
  #pluginSchema(name: string, query: URLSearchParams): Reply {
    const subsystem = query.get('subsystem');
    if (subsystem !== null && subsystem !== 'http' && subsystem !== 'stream') {
      throw PAL_ERR_ADMIN_BAD_CONFIG(`unsupported subsystem: ${subsystem}`);
    }
    if (query.get('all') === 'true') {
      log.warn('query parameter "all" will be deprecated soon.');
      return { status: 200, body: subsystem === 'stream' ? {} : this.#allPlugins() };
    }
    // Palisade has no stream plugins.
    if (subsystem === 'stream' || !this.#plugins.has(name)) throw PAL_ERR_ADMIN_NOT_FOUND('plugin not found');
    const kind: PluginKind = query.get('schema_type') === 'consumer' ? 'consumer' : 'route';
    const schema = this.#plugins.schema?.(name, kind);
    if (schema === undefined) throw PAL_ERR_ADMIN_BAD_CONFIG('not found schema');
    return { status: 200, body: schema };
  }

  /** `?all=true`: every plugin's schemas by name. */
  #allPlugins(): Record<string, unknown> {
    const all: Record<string, unknown> = {};
    for (const name of this.#plugins.names()) {
      const entry: Record<string, unknown> = { schema: this.#plugins.schema?.(name, 'route') ?? {} };
      const consumerSchema = this.#plugins.schema?.(name, 'consumer');
      if (consumerSchema !== undefined) entry.consumer_schema = consumerSchema;
      const metadataSchema = this.#plugins.schema?.(name, 'metadata');
      if (metadataSchema !== undefined) entry.metadata_schema = metadataSchema;
      all[name] = entry;
    }
    return all;
  }

  async #pluginsEndpoint(
    method: string,
    rest: string[],
    query: URLSearchParams,
    rawBody: string,
    address: string,
  ): Promise<Reply> {
    if (rest.length === 1 && rest[0] === 'reload') {
      if (method !== 'PUT') {
        throw PAL_ERR_ADMIN_METHOD(`please use PUT method to reload the plugins, ${method} method is not allowed.`);
      }
      if (this.#options.reloadPlugins) await this.#options.reloadPlugins();
      return { status: 200, body: 'done', text: true };
    }
    if (rest.length === 2 && rest[0] === 'upload') return this.#uploadPlugin(method, rest[1], rawBody, address);
    requireReadMethod(method, 'plugins');
    if (rest.length === 1 && rest[0] === 'list') {
      const subsystem = query.get('subsystem') ?? 'http';
      if (subsystem === 'stream') return { status: 200, body: [] };
      if (subsystem !== 'http') return { status: 400, body: 'invalid subsystem passed', text: true };
      return { status: 200, body: this.#plugins.names() };
    }
    if (rest.length === 1) return this.#pluginSchema(rest[0], query);
    throw PAL_ERR_ADMIN_NOT_FOUND('not found');
  }

  /** PUT /plugins/upload/{name}: admin keys only (viewers cannot PUT), checked before it goes live, logged. */
  async #uploadPlugin(method: string, name: string, source: string, address: string): Promise<Reply> {
    const upload = this.#options.uploadPlugin;
    if (upload === undefined) {
      throw PAL_ERR_ADMIN_NOT_FOUND('plugin upload is disabled; set plugin_upload: true in config.yaml to enable it');
    }
    if (method !== 'PUT')
      throw PAL_ERR_ADMIN_METHOD(`please use PUT method to upload a plugin, ${method} method is not allowed.`);
    if (source.trim() === '') throw PAL_ERR_ADMIN_BAD_CONFIG('invalid request body: empty request body');
    const sha256 = createHash('sha256').update(source).digest('hex');
    const err = await upload(name, source);
    if (err !== undefined) {
      log.warn('plugin upload rejected', {
        plugin: name,
        sha256,
        bytes: Buffer.byteLength(source),
        from: address,
        error: err,
      });
      throw PAL_ERR_ADMIN_BAD_CONFIG(`failed to load plugin ${name}: ${err}`);
    }
    log.warn('plugin uploaded and activated', {
      plugin: name,
      sha256,
      bytes: Buffer.byteLength(source),
      from: address,
    });
    return { status: 200, body: { name, sha256 } };
  }
}
