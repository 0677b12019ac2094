import type { NativeBackend } from './backend';
import { chunkedScan, parseRequestHead, parseResponse } from './js/parser';
import { routerBuild, routerFree, routerMatch } from './js/router';

// The pure TypeScript backend: the same functions as native/*.c, with the same
// results, for machines without a native build and for comparison.
export function loadJsBackend(): NativeBackend {
  return {
    name: 'js',
    parseRequest(buf, off, len, router, ip, out) {
      const n = parseRequestHead(buf, off, len, out);
      if (n > 0 && router >= 0) {
        const r = routerMatch(router, buf, out, ip);
        if (r < 0) return r;
      }
      return n;
    },
    parseResponse,
    chunkedScan,
    routerBuild,
    routerFree,
  };
}
