// Request variables in nginx/APISIX names, for `vars` matching and chash keys.
// Nothing is decoded until a variable is asked for; each answer is cached on
// the request.

import type { VarValue } from '../core/expr';
import { Out, normalisedPath } from '../native/layout';
import type { RequestState } from './request';

const METHOD_NAMES = ['', 'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH', 'PURGE'];

/** Compare buf[start, end) with a lower-case ASCII name, ignoring case. */
export function equalsLowerCase(buf: Buffer, start: number, end: number, lower: string): boolean {
  if (end - start !== lower.length) return false;
  for (let i = 0; i < lower.length; i++) {
    // Header names are tokens: setting bit 0x20 lower-cases letters and leaves '-', '_' and digits alone.
    if ((buf[start + i] | 0x20) !== lower.charCodeAt(i)) return false;
  }
  return true;
}

/** How long the upstream took to answer (ms); undefined until its response is complete (plugin routes only). */
export function upstreamTimeMs(req: RequestState): number | undefined {
  return req.upstreamDoneAt > 0 ? req.upstreamDoneAt - req.attemptStartedAt : undefined;
}

/** Every value of the header `lowerName` joined with ", ", or undefined. */
export function headerValue(req: RequestState, lowerName: string): string | undefined {
  const out = req.out;
  const count = out[Out.HeaderCount];
  let value: string | undefined;
  for (let i = 0; i < count; i++) {
    const slot = Out.Headers + 4 * i;
    if (!equalsLowerCase(req.head, out[slot], out[slot + 1], lowerName)) continue;
    const text = req.head.toString('latin1', out[slot + 2], out[slot + 3]);
    value = value === undefined ? text : `${value}, ${text}`;
  }
  return value;
}

/**
 * $uri: the path as nginx normalises it (percent-decoded, slashes merged, dot
 * segments resolved), which is also what the router matched. The parser wrote
 * it into out[] when it differs from the raw path; otherwise the raw path has
 * no '%' and is $uri as it is. Its bytes are read as UTF-8, as config strings are.
 */
function uri(req: RequestState): string {
  const normalised = normalisedPath(req.out);
  if (normalised !== null) return normalised.toString('utf8');
  return req.head.toString('utf8', req.out[Out.TargetStart], req.out[Out.PathEnd]);
}

function queryString(req: RequestState): string | undefined {
  const out = req.out;
  if (out[Out.PathEnd] >= out[Out.TargetEnd]) return undefined;
  return req.head.toString('latin1', out[Out.PathEnd] + 1, out[Out.TargetEnd]);
}

function queryArg(query: string | undefined, name: string): string | undefined {
  if (query === undefined) return undefined;
  for (const pair of query.split('&')) {
    const eq = pair.indexOf('=');
    const key = eq < 0 ? pair : pair.slice(0, eq);
    if (key === name) return eq < 0 ? '' : pair.slice(eq + 1);
  }
  return undefined;
}

function cookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(/[;,]/)) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function compute(req: RequestState, name: string): VarValue {
  const out = req.out;
  switch (name) {
    case 'uri':
      return uri(req);
    case 'request_uri': {
      // APISIX replaces request_uri with the normalised uri plus the query before any plugin
      // runs, so rules on it (uri-blocker) cannot be dodged with escapes or dot segments.
      const path = requestVar(req, 'uri') as string; // through the cache: plugins often read both
      const query = queryString(req);
      return query === undefined ? path : `${path}?${query}`;
    }
    case 'real_request_uri':
      // The raw target as the client sent it (and as it goes upstream).
      return req.head.toString('latin1', out[Out.TargetStart], out[Out.TargetEnd]);
    case 'args':
      return queryString(req);
    case 'remote_addr':
      return req.client.remoteAddress;
    case 'remote_port':
      return String(req.client.remotePort);
    case 'server_addr':
      return req.client.localAddress;
    case 'server_port':
      return String(req.client.localPort);
    case 'scheme':
      return 'http';
    case 'host': {
      if (out[Out.HostEnd] > out[Out.HostStart]) {
        return req.head.toString('latin1', out[Out.HostStart], out[Out.HostEnd]).toLowerCase();
      }
      return req.client.localAddress;
    }
    case 'request_method':
      return req.method > 0 ? METHOD_NAMES[req.method] : req.head.toString('latin1', req.headStart, out[Out.MethodEnd]);
    case 'server_protocol':
      return req.version === 1 ? 'HTTP/1.1' : 'HTTP/1.0';
  }
  if (name.startsWith('http_')) return headerValue(req, name.slice(5).replace(/_/g, '-').toLowerCase());
  if (name.startsWith('arg_')) return queryArg(queryString(req), name.slice(4));
  if (name.startsWith('cookie_')) return cookie(headerValue(req, 'cookie'), name.slice(7));
  return undefined;
}

/** Look up one variable of `req`, decoding it on first use. */
export function requestVar(req: RequestState, name: string): VarValue {
  // Not cached: these change while the request runs (the route is known once matching is over,
  // the consumer once an auth plugin attached one, the status once the response came).
  switch (name) {
    case 'route_id':
      return req.route?.id;
    case 'service_id':
      return req.route?.serviceId || undefined;
    case 'route_name':
      return req.route?.route.name;
    case 'consumer_name':
      return req.plugins?.consumer?.username;
    case 'status': {
      const status = req.plugins !== null ? req.plugins.status : req.responseStatus;
      return status === 0 ? undefined : String(status);
    }
    case 'upstream_status':
      return req.responseStatus === 0 ? undefined : String(req.responseStatus);
    case 'upstream_addr':
      return req.node?.address;
    case 'upstream_response_time': {
      // Seconds with ms resolution, as nginx reports it.
      const ms = upstreamTimeMs(req);
      return ms === undefined ? undefined : (ms / 1000).toFixed(3);
    }
    case 'request_length':
      return req.headEnd - req.headStart + req.bodyBytes;
    case 'bytes_sent':
      return req.plugins?.bytesSent;
    case 'request_time':
      // Seconds with ms resolution, as nginx logs it.
      return req.plugins !== null ? (Date.now() - req.plugins.startTime) / 1000 : undefined;
    // Cheap to read, and read on most plugin routes (a limit key): no cache entry for them.
    // real-ip replaces the client address for everything after it.
    case 'remote_addr':
      return req.plugins !== null && req.plugins.realAddress !== null
        ? req.plugins.realAddress
        : req.client.remoteAddress;
    case 'remote_port':
      return String(
        req.plugins !== null && req.plugins.realAddress !== null ? req.plugins.realPort : req.client.remotePort,
      );
  }
  let cache = req.varCache;
  if (cache === null) {
    cache = new Map();
    req.varCache = cache;
  } else if (cache.has(name)) {
    return cache.get(name);
  }
  const value = compute(req, name);
  cache.set(name, value);
  return value;
}
