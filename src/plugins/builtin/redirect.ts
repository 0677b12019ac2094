// redirect: answers with a redirect (`ret_code`, default 302) to `uri` (with
// `$var`s), to the request path rewritten by `regex_uri` (no redirect when it
// does not match), or to https when `http_to_https` is set and the request
// came in over http (301 for GET/HEAD, 308 otherwise, keeping the method).

import type { PluginModule } from '../types';
import { compileRegex, compileTemplate, uriSafeEncode, type Template } from './proxy-rewrite';

const NAME = 'redirect';

export interface RedirectConf {
  readonly ret_code: number;
  readonly uri?: string;
  readonly regex_uri?: readonly [string, string];
  readonly http_to_https?: boolean;
  readonly encode_uri: boolean;
  readonly append_query_string: boolean;
}

export interface CompiledRedirect {
  readonly retCode: number;
  readonly uri: Template | undefined;
  readonly regexUri: readonly [RegExp, Template] | undefined;
  readonly httpToHttps: boolean;
  readonly encodeUri: boolean;
  readonly appendQueryString: boolean;
}

const HTTPS_TARGET = compileTemplate('https://$host$request_uri');

const redirect: PluginModule<CompiledRedirect> = {
  name: NAME,
  version: '0.1',
  priority: 900,
  schema: {
    type: 'object',
    properties: {
      ret_code: { type: 'integer', minimum: 200, default: 302 },
      uri: { type: 'string', minLength: 2 },
      regex_uri: { type: 'array', minItems: 2, maxItems: 2, items: { type: 'string' } },
      http_to_https: { type: 'boolean' },
      encode_uri: { type: 'boolean', default: false },
      append_query_string: { type: 'boolean', default: false },
    },
    oneOf: [{ required: ['uri'] }, { required: ['regex_uri'] }, { required: ['http_to_https'] }],
  },

  check(raw) {
    const conf = raw as RedirectConf;
    if (conf.regex_uri !== undefined) {
      try {
        compileRegex(conf.regex_uri[0]);
      } catch (error) {
        return `invalid regex_uri(${conf.regex_uri[0]}, ${conf.regex_uri[1]}): ${(error as Error).message}`;
      }
    }
    if (conf.http_to_https === true && conf.append_query_string) {
      return 'only one of `http_to_https` and `append_query_string` can be configured.';
    }
    return undefined;
  },

  compile(raw) {
    const conf = raw as RedirectConf;
    return {
      retCode: conf.ret_code,
      uri: conf.uri === undefined ? undefined : compileTemplate(conf.uri),
      regexUri:
        conf.regex_uri === undefined
          ? undefined
          : [compileRegex(conf.regex_uri[0]), compileTemplate(conf.regex_uri[1])],
      httpToHttps: conf.http_to_https === true,
      encodeUri: conf.encode_uri,
      appendQueryString: conf.append_query_string,
    };
  },

  rewrite(conf, ctx) {
    let target = conf.uri;
    let status = conf.retCode;
    if (conf.httpToHttps && ctx.var('scheme') === 'http') {
      target = HTTPS_TARGET;
      status = ctx.method === 'GET' || ctx.method === 'HEAD' ? 301 : 308;
    }

    let location: string | undefined;
    if (target !== undefined) {
      location = target.render(ctx);
    } else if (conf.regexUri !== undefined) {
      const [regex, replacement] = conf.regexUri;
      const match = regex.exec(ctx.uri);
      if (match === null) return undefined;
      location =
        ctx.uri.slice(0, match.index) + replacement.render(ctx, match) + ctx.uri.slice(match.index + match[0].length);
    }
    if (location === undefined) return undefined;

    const queryInTarget = location.indexOf('?');
    if (conf.encodeUri) {
      location =
        queryInTarget < 0
          ? uriSafeEncode(location)
          : uriSafeEncode(location.slice(0, queryInTarget)) + location.slice(queryInTarget);
    }
    if (conf.appendQueryString) {
      const query = ctx.requestUri.indexOf('?');
      if (query >= 0 && query < ctx.requestUri.length - 1) {
        location += (queryInTarget < 0 ? '?' : '&') + ctx.requestUri.slice(query + 1);
      }
    }
    return ctx.exit(status, undefined, { Location: location });
  },
};

export default redirect;
