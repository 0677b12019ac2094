import type { NativeBackend } from './backend';
import { OUT_SIZE, Out } from './layout';
import { chunkedScan, parseRequestHead, parseResponse } from './js/parser';
import { routerBuild, routerFree, routerMatch } from './js/router';
import * as shdict from './js/shdict';

// The pure TypeScript backend: the same functions as native/*.c, with the same
// results, for machines without a native build and for comparison.
export function loadJsBackend(): NativeBackend {
  return {
    name: 'js',
    parseRequest(buf, off, len, router, ip, out) {
      // As in ffi and napi: the URI area must be there for a normalised path.
      if (out.length < OUT_SIZE) throw new RangeError('parseRequest: out must hold OUT_SIZE int32 slots');
      const n = parseRequestHead(buf, off, len, out);
      if (n > 0 && router >= 0) {
        const r = routerMatch(router, buf, out, ip);
        if (r < 0) {
          out[Out.Status] = r; // as the C side reports a router failure
          return r;
        }
      }
      return n;
    },
    parseResponse,
    chunkedScan,
    routerBuild,
    routerFree,
    // Per process only: see src/native/js/shdict.ts.
    shdictOpen: shdict.shdictOpen,
    shdictClose: shdict.shdictClose,
    shdictGet: shdict.shdictGet,
    shdictStore: shdict.shdictStore,
    shdictStoreNumber: shdict.shdictStoreNumber,
    shdictIncr: shdict.shdictIncr,
    shdictDelete: shdict.shdictDelete,
    shdictExpire: shdict.shdictExpire,
    shdictTtl: shdict.shdictTtl,
    shdictFlushAll: shdict.shdictFlushAll,
    shdictFlushExpired: shdict.shdictFlushExpired,
    shdictStats: shdict.shdictStats,
    shdictDebugHoldLock: shdict.shdictDebugHoldLock,
  };
}
