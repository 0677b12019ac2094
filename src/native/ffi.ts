import type { NativeBackend } from './backend';
import { OUT_SIZE, ShdictStatus } from './layout';
import { sharedLibraryPath } from './paths';

// koffi ships ESM type declarations; its CommonJS entry is what runs here.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const koffi = require('koffi') as typeof import('koffi', { with: { 'resolution-mode': 'import' } }).default;

// The default backend: libpalisade.so through koffi. Buffer + offset + length
// arguments are used throughout because passing a Buffer costs ~100 ns while a
// JS string argument (or Buffer.from per call) costs several times that.
export function loadFfiBackend(libraryPath = sharedLibraryPath): NativeBackend {
  const lib = koffi.load(libraryPath);
  const parseRequest = lib.func(
    'int32_t pal_parse_request(const uint8_t *buf, uint32_t off, uint32_t len, int32_t router, const uint8_t *ip, uint32_t ip_len, _Out_ int32_t *out)',
  );
  const parseResponse = lib.func(
    'int32_t pal_parse_response(const uint8_t *buf, uint32_t off, uint32_t len, int32_t req_method, _Out_ int32_t *out)',
  );
  const chunkedScan = lib.func(
    'int32_t pal_chunked_scan(const uint8_t *buf, uint32_t off, uint32_t len, _Inout_ int32_t *state)',
  );
  const routerBuild = lib.func('int32_t pal_router_build(const uint8_t *spec, uint32_t len)');
  const routerFree = lib.func('void pal_router_free(int32_t router)');
  const shdictOpen = lib.func(
    'int32_t pal_shdict_open(const uint8_t *path, uint32_t path_len, double capacity, int32_t flags)',
  );
  const shdictClose = lib.func('int32_t pal_shdict_close(int32_t dict)');
  const shdictGet = lib.func(
    'int32_t pal_shdict_get(int32_t dict, const uint8_t *key, uint32_t key_len, _Out_ uint8_t *value, uint32_t value_cap, _Out_ double *out)',
  );
  const shdictStore = lib.func(
    'int32_t pal_shdict_store(int32_t dict, int32_t mode, const uint8_t *key, uint32_t key_len, const uint8_t *value, uint32_t value_len, double ttl_ms, uint32_t flags)',
  );
  const shdictStoreNumber = lib.func(
    'int32_t pal_shdict_store_number(int32_t dict, int32_t mode, const uint8_t *key, uint32_t key_len, double number, double ttl_ms, uint32_t flags)',
  );
  const shdictIncr = lib.func(
    'int32_t pal_shdict_incr(int32_t dict, const uint8_t *key, uint32_t key_len, double delta, double init, double init_ttl_ms, int32_t has_init, _Out_ double *out)',
  );
  const shdictDelete = lib.func('int32_t pal_shdict_delete(int32_t dict, const uint8_t *key, uint32_t key_len)');
  const shdictExpire = lib.func(
    'int32_t pal_shdict_expire(int32_t dict, const uint8_t *key, uint32_t key_len, double ttl_ms)',
  );
  const shdictTtl = lib.func(
    'int32_t pal_shdict_ttl(int32_t dict, const uint8_t *key, uint32_t key_len, _Out_ double *out)',
  );
  const shdictFlushAll = lib.func('int32_t pal_shdict_flush_all(int32_t dict)');
  const shdictFlushExpired = lib.func('int32_t pal_shdict_flush_expired(int32_t dict, uint32_t max_count)');
  const shdictStats = lib.func('int32_t pal_shdict_stats(int32_t dict, _Out_ double *out)');
  const shdictDebugHoldLock = lib.func(
    'int32_t pal_shdict_debug_hold_lock(int32_t dict, double hold_ms, int32_t dirty, int32_t notify_fd)',
  );

  return {
    name: 'ffi',
    parseRequest: (buf, off, len, router, ip, out) => {
      // C writes a normalised path up to the end of out[OUT_SIZE]: a shorter array would be overrun.
      if (out.length < OUT_SIZE) throw new RangeError('parseRequest: out must hold OUT_SIZE int32 slots');
      return parseRequest(buf, off, len, router, ip, ip.length, out);
    },
    parseResponse: (buf, off, len, reqMethod, out) => parseResponse(buf, off, len, reqMethod, out),
    chunkedScan: (buf, off, len, state) => chunkedScan(buf, off, len, state),
    routerBuild: (spec) => routerBuild(spec, spec.length),
    routerFree: (router) => routerFree(router),
    // C reads key[0, keyLen) as given, so a length beyond the Buffer is refused here.
    shdictOpen: (path, capacity, flags) => shdictOpen(path, path.length, capacity, flags),
    shdictClose: (dict) => shdictClose(dict),
    shdictGet: (dict, key, keyLen, value, out) =>
      keyLen > key.length ? ShdictStatus.Arg : shdictGet(dict, key, keyLen, value, value.length, out),
    shdictStore: (dict, mode, key, keyLen, value, valueLen, ttlMs, flags) =>
      keyLen > key.length || valueLen > value.length
        ? ShdictStatus.Arg
        : shdictStore(dict, mode, key, keyLen, value, valueLen, ttlMs, flags),
    shdictStoreNumber: (dict, mode, key, keyLen, value, ttlMs, flags) =>
      keyLen > key.length ? ShdictStatus.Arg : shdictStoreNumber(dict, mode, key, keyLen, value, ttlMs, flags),
    shdictIncr: (dict, key, keyLen, delta, init, initTtlMs, hasInit, out) =>
      keyLen > key.length ? ShdictStatus.Arg : shdictIncr(dict, key, keyLen, delta, init, initTtlMs, hasInit, out),
    shdictDelete: (dict, key, keyLen) => (keyLen > key.length ? ShdictStatus.Arg : shdictDelete(dict, key, keyLen)),
    shdictExpire: (dict, key, keyLen, ttlMs) =>
      keyLen > key.length ? ShdictStatus.Arg : shdictExpire(dict, key, keyLen, ttlMs),
    shdictTtl: (dict, key, keyLen, out) => (keyLen > key.length ? ShdictStatus.Arg : shdictTtl(dict, key, keyLen, out)),
    shdictFlushAll: (dict) => shdictFlushAll(dict),
    shdictFlushExpired: (dict, maxCount) => shdictFlushExpired(dict, maxCount),
    shdictStats: (dict, out) => shdictStats(dict, out),
    shdictDebugHoldLock: (dict, holdMs, dirty, notifyFd) => shdictDebugHoldLock(dict, holdMs, dirty, notifyFd),
  };
}
