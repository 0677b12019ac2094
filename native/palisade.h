/*
 * Palisade native hot path: the ABI shared by the koffi library, the N-API
 * addon and (mirrored in src/native/layout.ts) the pure TypeScript backend.
 *
 * Rules of the boundary:
 *  - one call per request head (parse + route), per response head, or per
 *    body chunk scanned;
 *  - results go into a caller-owned int32 array laid out below; nothing is
 *    allocated per call and no pointer into the caller's buffer is kept;
 *  - offsets written to `out` are absolute offsets into `buf` (not relative
 *    to `off`), so JavaScript can slice the same Buffer directly.
 *
 * Keep this file and src/native/layout.ts in step.
 */
#ifndef PALISADE_H
#define PALISADE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define PAL_EXPORT __declspec(dllexport)
#else
#define PAL_EXPORT __attribute__((visibility("default")))
#endif

/* ---- result codes (return value of pal_parse_request / pal_parse_response) ----
 * > 0  : length of the head in bytes (start line + headers + final CRLF)
 * == 0 : head incomplete, call again with more bytes
 * < 0  : one of the errors below; the connection must be answered and closed */
#define PAL_INCOMPLETE 0
#define PAL_E_BAD_REQUEST -1        /* malformed start line or header line   -> 400 */
#define PAL_E_BAD_METHOD -2         /* method token invalid                  -> 400 */
#define PAL_E_BAD_TARGET -3         /* request-target invalid                -> 400 */
#define PAL_E_BAD_VERSION -4        /* not HTTP/1.0 or HTTP/1.1              -> 505 */
#define PAL_E_BAD_HEADER_NAME -5    /* empty name, non-token byte, space before colon -> 400 */
#define PAL_E_BAD_HEADER_VALUE -6   /* CTL or NUL byte in a value            -> 400 */
#define PAL_E_OBS_FOLD -7           /* line folding (obs-fold)               -> 400 */
#define PAL_E_CL_AND_TE -8          /* both Content-Length and Transfer-Encoding -> 400 */
#define PAL_E_DUP_CL -9             /* differing duplicate Content-Length    -> 400 */
#define PAL_E_BAD_CL -10            /* Content-Length not a decimal <= 2^53   -> 400 */
#define PAL_E_BAD_TE -11            /* Transfer-Encoding other than a final "chunked" -> 400 (501 for unknown codings is not used: we reject) */
#define PAL_E_TOO_MANY_HEADERS -12  /* more than PAL_MAX_HEADERS             -> 431 */
#define PAL_E_MISSING_HOST -13      /* HTTP/1.1 without Host, or several Host -> 400 */
#define PAL_E_BAD_STATUS -14        /* response: bad status line             -> 502 */
#define PAL_E_BAD_CHUNK -15         /* chunked: bad size line / missing CRLF -> 400 (request) / 502 (response) */
#define PAL_E_CHUNK_TOO_BIG -16     /* chunk size overflows 2^53             -> 400 / 502 */
#define PAL_E_ROUTER -17            /* router handle unknown                 -> 500 */
#define PAL_E_URI_TOO_LONG -18      /* a path that needs normalising is longer than PAL_URI_CAPACITY -> 414 */

#define PAL_MAX_HEADERS 100
#define PAL_MAX_CANDIDATES 16

/* ---- method codes (OUT_METHOD) ---- */
#define PAL_M_OTHER 0
#define PAL_M_GET 1
#define PAL_M_HEAD 2
#define PAL_M_POST 3
#define PAL_M_PUT 4
#define PAL_M_DELETE 5
#define PAL_M_CONNECT 6
#define PAL_M_OPTIONS 7
#define PAL_M_TRACE 8
#define PAL_M_PATCH 9
#define PAL_M_PURGE 10
/* A route's method mask has bit (1 << code) set for each allowed method;
 * mask 0 means any method. PAL_M_OTHER never matches a non-zero mask. */

/* ---- head flags (OUT_FLAGS) ---- */
#define PAL_F_CHUNKED (1 << 0)        /* Transfer-Encoding: chunked (final coding) */
#define PAL_F_CONTENT_LENGTH (1 << 1) /* Content-Length present and valid */
#define PAL_F_KEEP_ALIVE (1 << 2)     /* connection persists after this message (version + Connection) */
#define PAL_F_UPGRADE (1 << 3)        /* Connection: upgrade and an Upgrade header */
#define PAL_F_EXPECT_CONTINUE (1 << 4) /* Expect: 100-continue */
#define PAL_F_HAS_HOST (1 << 5)       /* a Host header was present */
#define PAL_F_NO_BODY (1 << 6)        /* response: HEAD/1xx/204/304, no body whatever the headers */
#define PAL_F_READ_TO_CLOSE (1 << 7)  /* response: body delimited by connection close */
#define PAL_F_HOP_HEADERS (1 << 8)    /* a hop-by-hop header other than Connection/Keep-Alive/TE framing is named in Connection */
#define PAL_F_HOP_LINES (1 << 9)      /* a line a proxy never forwards: TE, Trailer, Upgrade, Keep-Alive,
                                         Proxy-Connection, or a Connection other than exactly `keep-alive` */

/* ---- out[] layout (int32 slots) ---- */
#define OUT_STATUS 0        /* copy of the return value */
#define OUT_METHOD 1        /* request: PAL_M_* ; response: status code */
#define OUT_METHOD_END 2    /* request: method token is buf[off, OUT_METHOD_END) */
#define OUT_TARGET_START 3  /* request: target span; response: reason span */
#define OUT_TARGET_END 4
#define OUT_PATH_END 5      /* request: end of the path part of the target ('?' or target end) */
#define OUT_VERSION 6       /* minor version: 0 or 1 */
#define OUT_FLAGS 7         /* PAL_F_* */
#define OUT_CL_HI 8         /* content-length = hi * 2^32 + lo (uint32 halves) */
#define OUT_CL_LO 9
#define OUT_HOST_START 10   /* Host value without the port, span (0,0 when absent) */
#define OUT_HOST_END 11
#define OUT_HEADER_COUNT 12
#define OUT_ROUTE_COUNT 13  /* number of candidate routes written, -1 when no router given */
#define OUT_ROUTES 14       /* PAL_MAX_CANDIDATES route indexes, best first */
#define OUT_URI_LEN 30      /* request: -1 when the path is already normal, so $uri is the path span
                               itself; else the length of the normalised path in the URI area */
                            /* slot 31: reserved */
#define OUT_HEADERS 32      /* per header: name_start, name_end, value_start, value_end
                               (value trimmed of surrounding OWS) */
#define OUT_URI (OUT_HEADERS + 4 * PAL_MAX_HEADERS) /* URI area: PAL_URI_CAPACITY bytes (not int32s) from
                               here hold the normalised path when OUT_URI_LEN >= 0 */
#define PAL_URI_CAPACITY 8192 /* nginx's default request line limit (large_client_header_buffers 8k) */
#define OUT_SIZE (OUT_URI + PAL_URI_CAPACITY / 4)

/* ---- chunked scanner state (int32[PAL_CHUNK_STATE_SIZE], zeroed to start) ---- */
#define CHUNK_PHASE 0       /* internal */
#define CHUNK_REMAIN_HI 1   /* internal: bytes left in the current chunk */
#define CHUNK_REMAIN_LO 2
#define CHUNK_DONE 3        /* set to 1 once the last chunk and trailers were consumed */
#define CHUNK_AUX 4         /* internal */
#define CHUNK_STATE_SIZE 8

/*
 * Parse an HTTP/1.x request head in buf[off, off+len) and, when router >= 0,
 * match it against that route table. ip is 4 (IPv4) or 16 (IPv6) bytes.
 * out must hold OUT_SIZE int32s. Routes are matched on $uri, the path as
 * nginx normalises it (percent-decoded, slashes merged, dot segments
 * resolved; see normalise_path in parser.c): when the path needs it, the
 * normal form is written to the URI area and OUT_URI_LEN says how long it is.
 * The raw target stays where OUT_TARGET_START..OUT_TARGET_END point.
 */
PAL_EXPORT int32_t pal_parse_request(const uint8_t *buf, uint32_t off, uint32_t len, int32_t router,
                                     const uint8_t *ip, uint32_t ip_len, int32_t *out);

/* Parse a response head. req_method is the PAL_M_* of the request it answers. */
PAL_EXPORT int32_t pal_parse_response(const uint8_t *buf, uint32_t off, uint32_t len, int32_t req_method,
                                      int32_t *out);

/*
 * Scan chunked body bytes buf[off, off+len) with the caller's state.
 * Returns bytes consumed (stops right after the message end when CHUNK_DONE
 * becomes 1, leaving pipelined bytes unconsumed), or a negative PAL_E_*.
 */
PAL_EXPORT int32_t pal_chunked_scan(const uint8_t *buf, uint32_t off, uint32_t len, int32_t *state);

/*
 * Build a route table from a spec (format in native/router.c and
 * src/native/router-spec.ts). Returns a handle >= 0, or a negative error.
 * Handles are small integers, never pointers.
 */
PAL_EXPORT int32_t pal_router_build(const uint8_t *spec, uint32_t len);
PAL_EXPORT void pal_router_free(int32_t router);

/* ---- shared dictionary (native/shdict.c) ----
 * A key/value store in a file every process maps (see native/shdict.c for the
 * layout). Dictionaries are small-integer handles; keys and values are passed
 * as (pointer, length) and results land in a caller double[PAL_SHDICT_OUT_SIZE].
 * Return values: >= 0 success, negative PAL_SHDICT_E_*. TTLs are milliseconds,
 * 0 = never expires. */
#define PAL_SHDICT_OK 0
#define PAL_SHDICT_STORED_FORCIBLY 1 /* stored after evicting unexpired entries (LRU) */
#define PAL_SHDICT_E_NOT_FOUND -101  /* no such key (or expired); open: no such file and capacity 0 */
#define PAL_SHDICT_E_EXISTS -102     /* add: the key is present */
#define PAL_SHDICT_E_NOT_NUMBER -103 /* incr: the value is not a number */
#define PAL_SHDICT_E_BUFFER -104     /* get: value longer than value_cap; out[LENGTH] holds its length */
#define PAL_SHDICT_E_KEY -105        /* empty key, or longer than PAL_SHDICT_MAX_KEY */
#define PAL_SHDICT_E_TOO_LARGE -106  /* entry larger than the dictionary's largest block (stats MAX_ENTRY) */
#define PAL_SHDICT_E_HANDLE -107     /* unknown dictionary handle */
#define PAL_SHDICT_E_OPEN -108       /* open/ftruncate/fallocate/mmap failed */
#define PAL_SHDICT_E_BAD_FILE -109   /* the file is not a dictionary of this build */
#define PAL_SHDICT_E_SIZE -110       /* capacity out of range, or differs from the existing file */
#define PAL_SHDICT_E_LOCK -111       /* the lock could not be taken or recovered */
#define PAL_SHDICT_E_ARG -112        /* bad path, mode or TTL (negative, NaN) */
#define PAL_SHDICT_E_TOO_MANY -113   /* too many dictionaries open in this process */

#define PAL_SHDICT_MAX_KEY 65535
#define PAL_SHDICT_MIN_CAPACITY 32768
#define PAL_SHDICT_MAX_CAPACITY 2147483648.0 /* bytes, the whole file */

/* open flags */
#define PAL_SHDICT_OPEN_FRESH 1 /* unlink an existing file first (the primary, before starting workers) */

/* store modes */
#define PAL_SHDICT_SET 0
#define PAL_SHDICT_ADD 1     /* only when absent */
#define PAL_SHDICT_REPLACE 2 /* only when present */

/* value types (out[PAL_SHDICT_OUT_TYPE]) */
#define PAL_SHDICT_T_BYTES 1
#define PAL_SHDICT_T_NUMBER 2

/* out[] slots for get / incr / ttl */
#define PAL_SHDICT_OUT_TYPE 0
#define PAL_SHDICT_OUT_LENGTH 1 /* value length in bytes */
#define PAL_SHDICT_OUT_FLAGS 2  /* the uint32 flags given to store */
#define PAL_SHDICT_OUT_TTL 3    /* remaining ms, 0 = never expires */
#define PAL_SHDICT_OUT_NUMBER 4 /* the number (get of a number, incr result) */
/* out[] slots for stats */
#define PAL_SHDICT_STAT_CAPACITY 0 /* arena bytes */
#define PAL_SHDICT_STAT_USED 1     /* bytes in allocated blocks */
#define PAL_SHDICT_STAT_ITEMS 2
#define PAL_SHDICT_STAT_EVICTIONS 3       /* unexpired entries evicted for space */
#define PAL_SHDICT_STAT_EXPIRED 4         /* expired entries removed */
#define PAL_SHDICT_STAT_LOCK_RECOVERIES 5 /* locks taken over from a dead process */
#define PAL_SHDICT_STAT_RESETS 6          /* ... of which the dictionary was emptied (died mid-change) */
#define PAL_SHDICT_STAT_MAX_ENTRY 7       /* largest entry: header (40) + key + value */
#define PAL_SHDICT_OUT_SIZE 8

/* Open (creating when capacity > 0 and the file is new) a dictionary file of
 * `capacity` bytes; capacity 0 opens an existing one whatever its size.
 * Returns a handle >= 0 or a PAL_SHDICT_E_*. */
PAL_EXPORT int32_t pal_shdict_open(const uint8_t *path, uint32_t path_len, double capacity, int32_t flags);
PAL_EXPORT int32_t pal_shdict_close(int32_t dict);
/* Returns 0 and fills out (and value, for bytes), or NOT_FOUND / BUFFER. Marks the entry recently used. */
PAL_EXPORT int32_t pal_shdict_get(int32_t dict, const uint8_t *key, uint32_t key_len, uint8_t *value,
                                  uint32_t value_cap, double *out);
/* mode: PAL_SHDICT_SET / ADD / REPLACE. Returns 0, STORED_FORCIBLY, EXISTS (add), NOT_FOUND (replace). */
PAL_EXPORT int32_t pal_shdict_store(int32_t dict, int32_t mode, const uint8_t *key, uint32_t key_len,
                                    const uint8_t *value, uint32_t value_len, double ttl_ms, uint32_t flags);
PAL_EXPORT int32_t pal_shdict_store_number(int32_t dict, int32_t mode, const uint8_t *key, uint32_t key_len,
                                           double number, double ttl_ms, uint32_t flags);
/* Atomically add delta; out[NUMBER] = the new value, out[TTL] = the key's remaining ms (0 = never).
 * A missing key is created as init + delta (TTL init_ttl_ms) when has_init, else NOT_FOUND. The TTL
 * of an existing key is kept. */
PAL_EXPORT int32_t pal_shdict_incr(int32_t dict, const uint8_t *key, uint32_t key_len, double delta, double init,
                                   double init_ttl_ms, int32_t has_init, double *out);
PAL_EXPORT int32_t pal_shdict_delete(int32_t dict, const uint8_t *key, uint32_t key_len);
PAL_EXPORT int32_t pal_shdict_expire(int32_t dict, const uint8_t *key, uint32_t key_len, double ttl_ms);
/* out[TTL] = remaining ms (0 = never). */
PAL_EXPORT int32_t pal_shdict_ttl(int32_t dict, const uint8_t *key, uint32_t key_len, double *out);
PAL_EXPORT int32_t pal_shdict_flush_all(int32_t dict);
/* Remove up to max_count expired entries (0 = all); returns how many. */
PAL_EXPORT int32_t pal_shdict_flush_expired(int32_t dict, uint32_t max_count);
PAL_EXPORT int32_t pal_shdict_stats(int32_t dict, double *out);
/* Tests only: take the lock (and mark a change in progress when dirty), write "locked\n" to
 * notify_fd (unless < 0), hold it hold_ms (< 0: until killed), then release. */
PAL_EXPORT int32_t pal_shdict_debug_hold_lock(int32_t dict, double hold_ms, int32_t dirty, int32_t notify_fd);

#ifdef __cplusplus
}
#endif

#endif
