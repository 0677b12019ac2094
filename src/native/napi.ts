import type { NativeBackend } from './backend';
import { addonPath } from './paths';

interface Addon {
  parseRequest(buf: Buffer, off: number, len: number, router: number, ip: Buffer, out: Int32Array): number;
  parseResponse(buf: Buffer, off: number, len: number, reqMethod: number, out: Int32Array): number;
  chunkedScan(buf: Buffer, off: number, len: number, state: Int32Array): number;
  routerBuild(spec: Buffer): number;
  routerFree(router: number): void;
  shdictOpen: NativeBackend['shdictOpen'];
  shdictClose: NativeBackend['shdictClose'];
  shdictGet: NativeBackend['shdictGet'];
  shdictStore: NativeBackend['shdictStore'];
  shdictStoreNumber: NativeBackend['shdictStoreNumber'];
  shdictIncr: NativeBackend['shdictIncr'];
  shdictDelete: NativeBackend['shdictDelete'];
  shdictExpire: NativeBackend['shdictExpire'];
  shdictTtl: NativeBackend['shdictTtl'];
  shdictFlushAll: NativeBackend['shdictFlushAll'];
  shdictFlushExpired: NativeBackend['shdictFlushExpired'];
  shdictStats: NativeBackend['shdictStats'];
  shdictDebugHoldLock: NativeBackend['shdictDebugHoldLock'];
}

// The N-API addon built from the same C sources. Its exports already have the
// backend's signatures, so they are used as they are.
export function loadNapiBackend(modulePath = addonPath): NativeBackend {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const addon = require(modulePath) as Addon;
  return {
    name: 'napi',
    parseRequest: addon.parseRequest,
    parseResponse: addon.parseResponse,
    chunkedScan: addon.chunkedScan,
    routerBuild: addon.routerBuild,
    routerFree: addon.routerFree,
    shdictOpen: addon.shdictOpen,
    shdictClose: addon.shdictClose,
    shdictGet: addon.shdictGet,
    shdictStore: addon.shdictStore,
    shdictStoreNumber: addon.shdictStoreNumber,
    shdictIncr: addon.shdictIncr,
    shdictDelete: addon.shdictDelete,
    shdictExpire: addon.shdictExpire,
    shdictTtl: addon.shdictTtl,
    shdictFlushAll: addon.shdictFlushAll,
    shdictFlushExpired: addon.shdictFlushExpired,
    shdictStats: addon.shdictStats,
    shdictDebugHoldLock: addon.shdictDebugHoldLock,
  };
}
