// proxy-rewrite: changes the request sent upstream — its path (`uri` with
// `$var`s, or `regex_uri` pattern/replacement pairs, the first matching pair
// wins), `method`, `host` and headers (`{add,set,remove}` or a flat set map,
// values with `$var`s and the regex_uri captures `$1`...). The query string is
// kept. Templates and regexes are compiled once per configuration.
//
// The template and regex helpers are exported for redirect, which uses the
// same `$var` and `regex_uri` rules.

import { isHeaderName, type PluginContext, type PluginModule } from '../types';
import { rawTarget } from '../lib/auth';

const NAME = 'proxy-rewrite';

type TemplatePart = string | { readonly variable: string } | { readonly capture: number };

/** A string with `$name` / `${name}` variables and `$1` / `${1}` captures, compiled to parts. */
export interface Template {
  readonly constant: string | undefined;
  render(ctx: PluginContext, captures?: RegExpExecArray | null): string;
}

// `\$` is a literal dollar; `$name`, `${name}`, `$1`, `${1}` are substitutions.
const TEMPLATE_TOKEN = /\\\$|\$\{(\w+)\}|\$(\w+)/g;

export function compileTemplate(source: string): Template {
  const parts: TemplatePart[] = [];
  let last = 0;
  for (const match of source.matchAll(TEMPLATE_TOKEN)) {
    if (match.index > last) parts.push(source.slice(last, match.index));
    const name = match[1] ?? match[2];
    if (name === undefined) parts.push('$');
    else if (/^\d+$/.test(name)) parts.push({ capture: Number(name) });
    else parts.push({ variable: name });
    last = match.index + match[0].length;
  }
  if (last < source.length) parts.push(source.slice(last));
  if (parts.every((part) => typeof part === 'string')) {
    const constant = parts.join('');
    return { constant, render: () => constant };
  }
  return {
    constant: undefined,
    render(ctx, captures) {
      let out = '';
      for (const part of parts) {
        if (typeof part === 'string') out += part;
        else if ('capture' in part) out += captures?.[part.capture] ?? '';
        else out += varText(ctx.var(part.variable));
      }
      return out;
    },
  };
}

function varText(value: ReturnType<PluginContext['var']>): string {
  if (value === undefined || value === null) return '';
  return Array.isArray(value) ? value.join(', ') : String(value);
}

/** A PCRE pattern of the configuration as a JS RegExp; throws with the engine's message when invalid. */
export function compileRegex(pattern: string): RegExp {
  return new RegExp(pattern);
}

/** ngx.re.sub: replace the first match, `$0`/`${0}` the whole match, `$n` a group. Undefined when nothing matched. */
export function substituteFirst(input: string, regex: RegExp, replacement: Template): string | undefined {
  const match = regex.exec(input);
  if (match === null) return undefined;
  return (
    input.slice(0, match.index) + renderReplacement(replacement, match) + input.slice(match.index + match[0].length)
  );
}

function renderReplacement(replacement: Template, match: RegExpExecArray): string {
  if (replacement.constant !== undefined) return replacement.constant;
  // Replacements only take captures; there is no context, so variables render as empty text.
  return replacement.render(NO_VARS, match);
}

const NO_VARS = { var: () => undefined } as unknown as PluginContext;

// RFC 3986 unreserved and reserved characters, and '%', stay as they are (core.utils.uri_safe_encode).
const UNSAFE_URI_CHARACTERS = /[^A-Za-z0-9\-._~!$&'()*+,;=:@/%]+/g;

export function uriSafeEncode(path: string): string {
  return path.replace(UNSAFE_URI_CHARACTERS, (run) => encodeURIComponent(run));
}

/** The path with its query string kept: `?args` appended (with `&` when the new path has its own query). */
export function withQueryString(path: string, requestUri: string): string {
  const query = requestUri.indexOf('?');
  const queryIndex = path.indexOf('?');
  const encoded =
    queryIndex < 0 ? uriSafeEncode(path) : uriSafeEncode(path.slice(0, queryIndex)) + path.slice(queryIndex);
  if (query < 0 || query === requestUri.length - 1) return encoded;
  return encoded + (queryIndex < 0 ? '?' : '&') + requestUri.slice(query + 1);
}

const HTTP_METHODS = [
  'GET',
  'POST',
  'PUT',
  'HEAD',
  'DELETE',
  'OPTIONS',
  'MKCOL',
  'COPY',
  'MOVE',
  'PROPFIND',
  'LOCK',
  'UNLOCK',
  'PATCH',
  'TRACE',
];

const headerValue = { oneOf: [{ type: 'string' }, { type: 'number' }] };
const headerMap = { type: 'object', minProperties: 1, patternProperties: { '^[^:]+$': headerValue } };

export interface ProxyRewriteConf {
  readonly uri?: string;
  readonly method?: string;
  readonly regex_uri?: readonly string[];
  readonly host?: string;
  readonly headers?: Readonly<Record<string, unknown>>;
  readonly use_real_request_uri_unsafe?: boolean;
}

interface HeaderOperation {
  readonly name: string;
  readonly value: Template;
}

export interface CompiledProxyRewrite {
  readonly uri: Template | undefined;
  readonly regexUri: readonly (readonly [RegExp, Template])[];
  readonly method: string | undefined;
  readonly host: string | undefined;
  readonly addHeaders: readonly HeaderOperation[];
  readonly setHeaders: readonly HeaderOperation[];
  readonly removeHeaders: readonly string[];
  readonly realRequestUri: boolean;
}

function isOperationsForm(headers: Readonly<Record<string, unknown>>): boolean {
  const isTable = (value: unknown) => typeof value === 'object' && value !== null;
  return isTable(headers.add) || isTable(headers.set) || isTable(headers.remove);
}

// A header name is a token (isHeaderName); a value takes no CR, LF or NUL.
const HEADER_VALUE = /^[^\r\n\0]*$/;

function checkHeaderMap(map: Readonly<Record<string, unknown>>): string | undefined {
  for (const [field, value] of Object.entries(map)) {
    if (typeof value !== 'string' && typeof value !== 'number') return 'invalid type as header value';
    if (field.length === 0) return 'invalid field length in header';
    if (!isHeaderName(field)) return 'invalid field character in header';
    if (!HEADER_VALUE.test(String(value))) return 'invalid value character in header';
  }
  return undefined;
}

function headerOperations(map: Readonly<Record<string, unknown>> | undefined): HeaderOperation[] {
  return Object.entries(map ?? {}).map(([name, value]) => ({ name, value: compileTemplate(String(value)) }));
}

const proxyRewrite: PluginModule<CompiledProxyRewrite> = {
  name: NAME,
  version: '0.1',
  priority: 1008,
  schema: {
    type: 'object',
    properties: {
      uri: { type: 'string', minLength: 1, maxLength: 4096, pattern: '^\\/.*' },
      method: { type: 'string', enum: HTTP_METHODS },
      regex_uri: { type: 'array', minItems: 2, items: { type: 'string' } },
      host: { type: 'string', pattern: '^[0-9a-zA-Z-.]+(:\\d{1,5})?$' },
      headers: {
        anyOf: [
          headerMap,
          {
            type: 'object',
            properties: {
              add: headerMap,
              set: headerMap,
              remove: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^[^:]+$' } },
            },
          },
        ],
      },
      use_real_request_uri_unsafe: { type: 'boolean', default: false },
    },
    minProperties: 1,
  },

  check(raw) {
    const conf = raw as ProxyRewriteConf;
    if (conf.regex_uri !== undefined) {
      if (conf.regex_uri.length % 2 !== 0) return 'The length of regex_uri should be an even number';
      for (let i = 0; i < conf.regex_uri.length; i += 2) {
        try {
          compileRegex(conf.regex_uri[i]);
        } catch (error) {
          return `invalid regex_uri(${conf.regex_uri[i]}, ${conf.regex_uri[i + 1]}): ${(error as Error).message}`;
        }
      }
    }
    const headers = conf.headers;
    if (headers === undefined) return undefined;
    if (!isOperationsForm(headers)) return checkHeaderMap(headers);
    for (const part of ['add', 'set'] as const) {
      const map = headers[part] as Readonly<Record<string, unknown>> | undefined;
      const error = map === undefined ? undefined : checkHeaderMap(map);
      if (error !== undefined) return error;
    }
    return undefined;
  },

  compile(raw) {
    const conf = raw as ProxyRewriteConf;
    const regexUri: [RegExp, Template][] = [];
    for (let i = 0; conf.regex_uri !== undefined && i < conf.regex_uri.length; i += 2) {
      regexUri.push([compileRegex(conf.regex_uri[i]), compileTemplate(conf.regex_uri[i + 1])]);
    }
    const headers = conf.headers;
    const operations = headers !== undefined && isOperationsForm(headers);
    return {
      uri: conf.uri === undefined ? undefined : compileTemplate(conf.uri),
      regexUri,
      method: conf.method,
      host: conf.host,
      addHeaders: operations ? headerOperations(headers.add as Record<string, unknown>) : [],
      setHeaders: headerOperations(operations ? (headers.set as Record<string, unknown>) : headers),
      removeHeaders: operations ? ((headers.remove as string[] | undefined) ?? []) : [],
      realRequestUri: conf.use_real_request_uri_unsafe === true,
    };
  },

  rewrite(conf, ctx) {
    if (conf.host !== undefined) ctx.setHost(conf.host);
    if (conf.method !== undefined) ctx.setMethod(conf.method);

    let captures: RegExpExecArray | null = null;
    // use_real_request_uri_unsafe: start from the path as received and send it without re-encoding.
    const source = conf.realRequestUri ? rawTarget(ctx) : ctx.uri;
    let path: string | undefined = conf.realRequestUri ? source : undefined;
    if (conf.uri !== undefined) {
      path = conf.uri.render(ctx);
    } else {
      for (const [regex, replacement] of conf.regexUri) {
        captures = regex.exec(source);
        if (captures === null) continue;
        path =
          source.slice(0, captures.index) +
          renderReplacement(replacement, captures) +
          source.slice(captures.index + captures[0].length);
        break;
      }
    }
    if (path !== undefined) ctx.setUri(conf.realRequestUri ? path : withQueryString(path, ctx.requestUri));

    for (const { name, value } of conf.addHeaders) ctx.addHeader(name, value.render(ctx, captures));
    for (const { name, value } of conf.setHeaders) ctx.setHeader(name, value.render(ctx, captures));
    for (const name of conf.removeHeaders) ctx.setHeader(name, null);
    return undefined;
  },
};

export default proxyRewrite;
