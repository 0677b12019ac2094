// Path parameters of a matched route ('/user/:name', '/files/*path'). The
// router only returns route indexes; plugins that need the captures call this
// lazily with the route's uri and the request path.
import { TokenType, parseUriPattern } from './router-spec';
import type { UriPattern } from './router-spec';

// Patterns are parsed once per distinct uri; route tables reuse the same strings.
const patternCache = new Map<string, UriPattern>();
const PATTERN_CACHE_LIMIT = 10000;

function patternOf(uri: string): UriPattern {
  let pattern = patternCache.get(uri);
  if (pattern === undefined) {
    if (patternCache.size >= PATTERN_CACHE_LIMIT) patternCache.clear();
    pattern = parseUriPattern(uri);
    patternCache.set(uri, pattern);
  }
  return pattern;
}

/**
 * The parameters of `uri` captured from `path`, or undefined when the path
 * does not match the uri. Values are the raw path bytes (not percent-decoded),
 * as the router matched them. A ':name' captures one non-empty segment, a
 * '*name' the rest of the path (possibly empty). A uri without parameters
 * gives an empty object when it matches.
 */
export function extractParams(uri: string, path: string): Record<string, string> | undefined {
  const pattern = patternOf(uri);
  if (!path.startsWith(pattern.staticPrefix)) return undefined;
  const params: Record<string, string> = Object.create(null) as Record<string, string>;
  let pos = pattern.staticPrefix.length;
  for (const token of pattern.tokens) {
    if (token.type === TokenType.Literal) {
      if (!path.startsWith(token.text, pos)) return undefined;
      pos += token.text.length;
    } else if (token.type === TokenType.Param) {
      let end = path.indexOf('/', pos);
      if (end < 0) end = path.length;
      if (end === pos) return undefined;
      params[token.name] = path.slice(pos, end);
      pos = end;
    } else {
      params[token.name] = path.slice(pos);
      return params;
    }
  }
  return pattern.trailing || pos === path.length ? params : undefined;
}
