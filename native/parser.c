/*
 * Strict HTTP/1.x parsing for the hot path (RFC 9112): request heads,
 * response heads and chunked bodies, with results laid out as palisade.h says.
 *
 * Request smuggling is kept impossible by construction: anything the grammar
 * does not allow, or allows with more than one reading (obs-fold, bare LF or
 * CR, Content-Length with Transfer-Encoding, lists of codings, differing
 * lengths, several Host headers), is rejected rather than repaired.
 *
 * The parsers are stateless: each call parses from `off` again, validates
 * bytes as it goes and returns an error as soon as the bytes seen are
 * invalid, or 0 when they are a valid but unfinished head.
 *
 * src/native/js/parser.ts mirrors this file step for step; the two must
 * write the same out[] slots and return the same codes
 * (test/native/differential.test.ts checks it).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"

/* ---- byte classes ---- */
#define CC_TCHAR 1  /* token character (field names, methods) */
#define CC_VALUE 2  /* field value byte: HTAB, SP, VCHAR, obs-text */
#define CC_HOST 4   /* reg-name byte we accept in a host: ALPHA DIGIT - . _ ~ */
#define CC_HEX 8    /* HEXDIG */
#define CC_DIGIT 16 /* DIGIT */
#define CC_TARGET 32 /* request-target byte: anything but CTL, SP and DEL */
#define CC_PATH_MARK 64 /* '#', '%', '/', '?' and SP: where a path may need normalising, or ends */

/* One lookup per byte instead of range compares in every loop. */
static const uint8_t char_class[256] = {
    0,  0,  0,  0,  0,  0,  0,  0,  0,  2,  0,  0,  0,  0,  0,  0,  /* 0x00 */
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 0x10 */
    66, 35, 34, 99, 35, 99, 35, 35, 34, 34, 35, 35, 34, 39, 39, 98, /* 0x20 */
    63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 34, 34, 34, 34, 34, 98, /* 0x30 */
    34, 47, 47, 47, 47, 47, 47, 39, 39, 39, 39, 39, 39, 39, 39, 39, /* 0x40 */
    39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 34, 34, 34, 35, 39, /* 0x50 */
    35, 47, 47, 47, 47, 47, 47, 39, 39, 39, 39, 39, 39, 39, 39, 39, /* 0x60 */
    39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 34, 35, 34, 39, 0,  /* 0x70 */
    34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, /* 0x80 */
    34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, /* 0x90 */
    34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, /* 0xa0 */
    34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, /* 0xb0 */
    34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, /* 0xc0 */
    34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, /* 0xd0 */
    34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, /* 0xe0 */
    34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, /* 0xf0 */
};

#define MAX_SAFE_INTEGER 9007199254740991ULL /* 2^53 - 1: exact in a JavaScript number */
#define MAX_OFFSET 0x7fffffffu               /* offsets are written to int32 slots */
#define MAX_CHUNK_SIZE_DIGITS 16
#define MAX_CHUNK_LINE 4096    /* chunk-size + chunk-ext bytes */
#define MAX_TRAILER_BYTES 16384

/* SWAR tests on 8 bytes at once. */
#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
/*
 * The high bit of each byte below n (n <= 0x80) is set. Only the lowest set
 * bit is exact: a borrow out of a flagged byte may flag the next one too.
 */
static uint64_t bytes_below(uint64_t w, uint8_t n) { return (w - ONES * n) & ~w & HIGHS; }

/* bytes_below() for the bytes that end a value or target span: those below `lowest`, and DEL. */
static uint64_t stop_bytes(uint64_t w, uint8_t lowest) {
  return bytes_below(w, lowest) | bytes_below(w ^ (ONES * 0x7f), 1);
}

static uint64_t load64(const uint8_t *p) {
  uint64_t w;
  memcpy(&w, p, 8); /* unaligned load without UB */
  return w;
}

#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HAVE_FIRST_FLAGGED 1
/* Index of the first byte (lowest address) whose high bit is set in a bytes_below() mask; mask != 0. */
static size_t first_flagged(uint64_t mask) { return (size_t)__builtin_ctzll(mask) >> 3; }
#endif

/*
 * Advance p over bytes of class `cls` (CC_VALUE or CC_TARGET). Header values
 * and targets are most of a head, so whole words with no byte below `lowest`
 * and no DEL are skipped 8 at a time. In a word that has one, every byte
 * before the first such byte is in the class (all of 0x21-0x7e and obs-text
 * are, in both), so p jumps there and that one byte is classified: HTAB goes
 * on in a value, anything else ends the span.
 */
static size_t skip_class(const uint8_t *buf, size_t p, size_t end, uint8_t cls, uint8_t lowest) {
#ifdef HAVE_FIRST_FLAGGED
  while (end - p >= 8) {
    uint64_t word = load64(buf + p);
    uint64_t flagged = stop_bytes(word, lowest);
    if (flagged == 0) {
      p += 8;
      continue;
    }
    p += first_flagged(flagged);
    if (!(char_class[buf[p]] & cls)) return p;
    p++;
  }
  while (p < end && (char_class[buf[p]] & cls)) p++;
  return p;
#else
  for (;;) {
    while (end - p >= 8) {
      uint64_t word = load64(buf + p);
      if (stop_bytes(word, lowest) != 0) break;
      p += 8;
    }
    size_t stop = end - p > 8 ? p + 8 : end;
    while (p < stop && (char_class[buf[p]] & cls)) p++;
    if (p < stop || p >= end) return p;
  }
#endif
}

static int is_ows(uint8_t b) { return b == ' ' || b == '\t'; }

static uint8_t ascii_lower(uint8_t b) { return (b >= 'A' && b <= 'Z') ? (uint8_t)(b | 0x20) : b; }

/* Case-insensitive compare of buf[s, e) with a lower-case literal. */
static int span_equals_lower(const uint8_t *buf, size_t s, size_t e, const char *lower, size_t n) {
  if (e - s != n) return 0;
  for (size_t i = 0; i < n; i++) {
    if (ascii_lower(buf[s + i]) != (uint8_t)lower[i]) return 0;
  }
  return 1;
}

/*
 * span_equals_lower for spans the parser has already bounded: a field name
 * (tchar only), a field value or a part of one (no control byte but HTAB),
 * against a literal of lower-case letters, digits and '-'. OR-ing 0x20 into
 * every byte lower-cases letters and leaves digits and '-' alone; the only
 * other bytes it maps into that set are controls (0x0d to '-', 0x10-0x19 to
 * digits), which such spans do not hold. So whole words compare at once, the
 * last one overlapping the one before when the length is not a multiple.
 */
static int token_equals(const uint8_t *buf, size_t s, size_t e, const char *lower, size_t n) {
  if (e - s != n) return 0;
  const uint8_t *a = buf + s;
  const uint8_t *b = (const uint8_t *)lower;
  if (n >= 8) {
    for (size_t i = 0; i + 8 < n; i += 8) {
      if ((load64(a + i) | (ONES * 0x20)) != load64(b + i)) return 0;
    }
    return (load64(a + n - 8) | (ONES * 0x20)) == load64(b + n - 8);
  }
  if (n >= 4) {
    uint32_t a0, a1, b0, b1;
    memcpy(&a0, a, 4);
    memcpy(&a1, a + n - 4, 4);
    memcpy(&b0, b, 4);
    memcpy(&b1, b + n - 4, 4);
    return (a0 | 0x20202020u) == b0 && (a1 | 0x20202020u) == b1;
  }
  return span_equals_lower(buf, s, e, lower, n);
}

/* s[0, 8) is "HTTP/1.0" or "HTTP/1.1" (the caller knows 8 bytes are there). */
static int is_http_1x(const uint8_t *s) { return memcmp(s, "HTTP/1.", 7) == 0 && (s[7] == '0' || s[7] == '1'); }

/* Limit len so that every offset written to out[] fits an int32. */
static size_t end_of_input(uint32_t off, uint32_t len) {
  if (off >= MAX_OFFSET) return off;
  size_t room = MAX_OFFSET - off;
  return (size_t)off + (len < room ? len : room);
}

static int32_t method_code(const uint8_t *m, size_t n) {
  switch (n) {
    case 3:
      if (m[0] == 'G' && m[1] == 'E' && m[2] == 'T') return PAL_M_GET;
      if (m[0] == 'P' && m[1] == 'U' && m[2] == 'T') return PAL_M_PUT;
      break;
    case 4:
      if (m[0] == 'P' && m[1] == 'O' && m[2] == 'S' && m[3] == 'T') return PAL_M_POST;
      if (m[0] == 'H' && m[1] == 'E' && m[2] == 'A' && m[3] == 'D') return PAL_M_HEAD;
      break;
    case 5:
      if (m[0] == 'P' && m[1] == 'A' && m[2] == 'T' && m[3] == 'C' && m[4] == 'H') return PAL_M_PATCH;
      if (m[0] == 'T' && m[1] == 'R' && m[2] == 'A' && m[3] == 'C' && m[4] == 'E') return PAL_M_TRACE;
      if (m[0] == 'P' && m[1] == 'U' && m[2] == 'R' && m[3] == 'G' && m[4] == 'E') return PAL_M_PURGE;
      break;
    case 6:
      if (m[0] == 'D' && m[1] == 'E' && m[2] == 'L' && m[3] == 'E' && m[4] == 'T' && m[5] == 'E') return PAL_M_DELETE;
      break;
    case 7:
      if (m[0] == 'O' && m[1] == 'P' && m[2] == 'T' && m[3] == 'I' && m[4] == 'O' && m[5] == 'N' && m[6] == 'S')
        return PAL_M_OPTIONS;
      if (m[0] == 'C' && m[1] == 'O' && m[2] == 'N' && m[3] == 'N' && m[4] == 'E' && m[5] == 'C' && m[6] == 'T')
        return PAL_M_CONNECT;
      break;
    default:
      break;
  }
  return PAL_M_OTHER;
}

/*
 * Validate host [ ":" port ] in buf[s, e): an IPv6 literal in brackets or a
 * reg-name of ALPHA DIGIT - . _ ~ (percent-encoding and the other sub-delims
 * are valid RFC 3986 but never needed for a real host, so they are refused),
 * then an optional port of 1 to 5 digits. Sets *host_end to the end of the
 * host (brackets kept). Returns 1 when valid.
 */
static int valid_authority(const uint8_t *buf, size_t s, size_t e, int require_port, size_t *host_end) {
  size_t p = s;
  if (p >= e) return 0;
  if (buf[p] == '[') {
    p++;
    while (p < e && ((char_class[buf[p]] & CC_HEX) || buf[p] == ':' || buf[p] == '.')) p++;
    if (p >= e || buf[p] != ']' || p - s < 3) return 0;
    p++;
  } else {
    while (p < e && (char_class[buf[p]] & CC_HOST)) p++;
    if (p == s) return 0;
  }
  *host_end = p;
  if (p == e) return !require_port;
  if (buf[p] != ':') return 0;
  p++;
  size_t digits = e - p;
  if (digits < 1 || digits > 5) return 0;
  for (; p < e; p++) {
    if (!(char_class[buf[p]] & CC_DIGIT)) return 0;
  }
  return 1;
}

/* What the field lines of one head said about framing and the connection. */
struct head {
  int is_request;
  int32_t version; /* minor version, 0 or 1 */
  int32_t header_count;
  int host_count;
  size_t host_start, host_end;
  int has_content_length;
  uint64_t content_length;
  int transfer_encoding_count;
  int chunked; /* the (last) Transfer-Encoding ends in chunked */
  int connection_close, connection_keep_alive, connection_upgrade, connection_other;
  int hop_lines; /* PAL_F_HOP_LINES */
  int has_upgrade;
  int expect_continue;
};

static void head_init(struct head *h, int is_request, int32_t version) {
  h->is_request = is_request;
  h->version = version;
  h->header_count = 0;
  h->host_count = 0;
  h->host_start = 0;
  h->host_end = 0;
  h->has_content_length = 0;
  h->content_length = 0;
  h->transfer_encoding_count = 0;
  h->chunked = 0;
  h->connection_close = 0;
  h->connection_keep_alive = 0;
  h->connection_upgrade = 0;
  h->connection_other = 0;
  h->hop_lines = 0;
  h->has_upgrade = 0;
  h->expect_continue = 0;
}

/* Content-Length: 1*DIGIT, or a list of identical 1*DIGIT (RFC 9110 8.6). */
static int32_t on_content_length(struct head *h, const uint8_t *buf, size_t vs, size_t ve) {
  size_t i = vs;
  for (;;) {
    size_t comma = i;
    while (comma < ve && buf[comma] != ',') comma++;
    size_t a = i, z = comma;
    while (a < z && is_ows(buf[a])) a++;
    while (z > a && is_ows(buf[z - 1])) z--;
    if (a == z) return PAL_E_BAD_CL;
    uint64_t value = 0;
    for (size_t k = a; k < z; k++) {
      if (!(char_class[buf[k]] & CC_DIGIT)) return PAL_E_BAD_CL;
      value = value * 10 + (uint64_t)(buf[k] - '0');
      if (value > MAX_SAFE_INTEGER) return PAL_E_BAD_CL;
    }
    if (h->has_content_length && value != h->content_length) return PAL_E_DUP_CL;
    h->has_content_length = 1;
    h->content_length = value;
    if (comma >= ve) break;
    i = comma + 1;
  }
  if (h->transfer_encoding_count > 0) return PAL_E_CL_AND_TE;
  return 0;
}

/*
 * Transfer-Encoding. A request may only say exactly `chunked`, once; a
 * response may list codings, and its body is chunked only when the last one
 * is. An HTTP/1.0 message with Transfer-Encoding has faulty framing
 * (RFC 9112 6.1) and is refused.
 */
static int32_t on_transfer_encoding(struct head *h, const uint8_t *buf, size_t vs, size_t ve) {
  if (h->version == 0) return PAL_E_BAD_TE;
  if (h->is_request) {
    if (h->transfer_encoding_count > 0) return PAL_E_BAD_TE;
    if (!token_equals(buf, vs, ve, "chunked", 7)) return PAL_E_BAD_TE;
    h->chunked = 1;
  } else {
    size_t last = ve;
    while (last > vs && buf[last - 1] != ',') last--;
    while (last < ve && is_ows(buf[last])) last++;
    h->chunked = token_equals(buf, last, ve, "chunked", 7);
  }
  h->transfer_encoding_count++;
  if (h->has_content_length) return PAL_E_CL_AND_TE;
  return 0;
}

static void on_connection(struct head *h, const uint8_t *buf, size_t vs, size_t ve) {
  size_t i = vs;
  for (;;) {
    size_t comma = i;
    while (comma < ve && buf[comma] != ',') comma++;
    size_t a = i, z = comma;
    while (a < z && is_ows(buf[a])) a++;
    while (z > a && is_ows(buf[z - 1])) z--;
    if (token_equals(buf, a, z, "close", 5)) {
      h->connection_close = 1;
    } else if (token_equals(buf, a, z, "keep-alive", 10)) {
      h->connection_keep_alive = 1;
    } else if (token_equals(buf, a, z, "upgrade", 7)) {
      h->connection_upgrade = 1;
    } else if (a < z) {
      h->connection_other = 1;
    }
    if (comma >= ve) break;
    i = comma + 1;
  }
}

static int32_t on_host(struct head *h, const uint8_t *buf, size_t vs, size_t ve) {
  if (h->host_count++ > 0) return PAL_E_MISSING_HOST;
  size_t host_end;
  if (!valid_authority(buf, vs, ve, 0, &host_end)) return PAL_E_BAD_REQUEST;
  h->host_start = vs;
  h->host_end = host_end;
  return 0;
}

/*
 * The few field names that matter for framing or that a proxy drops, found by
 * length then name. A response whose only such line is `Connection:
 * keep-alive` can go to a keep-alive client unchanged (no PAL_F_HOP_LINES).
 */
static int32_t on_field(struct head *h, const uint8_t *buf, size_t ns, size_t ne, size_t vs, size_t ve) {
  switch (ne - ns) {
    case 2:
      if (token_equals(buf, ns, ne, "te", 2)) h->hop_lines = 1;
      break;
    case 4:
      if (h->is_request && token_equals(buf, ns, ne, "host", 4)) return on_host(h, buf, vs, ve);
      break;
    case 6:
      if (h->is_request && token_equals(buf, ns, ne, "expect", 6) &&
          token_equals(buf, vs, ve, "100-continue", 12))
        h->expect_continue = 1;
      break;
    case 7:
      if (token_equals(buf, ns, ne, "upgrade", 7)) {
        h->has_upgrade = 1;
        h->hop_lines = 1;
      } else if (token_equals(buf, ns, ne, "trailer", 7)) {
        h->hop_lines = 1;
      }
      break;
    case 10:
      if (token_equals(buf, ns, ne, "connection", 10)) {
        on_connection(h, buf, vs, ve);
        if (!token_equals(buf, vs, ve, "keep-alive", 10)) h->hop_lines = 1;
      } else if (token_equals(buf, ns, ne, "keep-alive", 10)) {
        h->hop_lines = 1;
      }
      break;
    case 14:
      if (token_equals(buf, ns, ne, "content-length", 14)) return on_content_length(h, buf, vs, ve);
      break;
    case 16:
      if (token_equals(buf, ns, ne, "proxy-connection", 16)) h->hop_lines = 1;
      break;
    case 17:
      if (token_equals(buf, ns, ne, "transfer-encoding", 17)) return on_transfer_encoding(h, buf, vs, ve);
      break;
    default:
      break;
  }
  return 0;
}

/*
 * Parse field lines from p up to and including the empty line. Returns 1 and
 * sets *head_end when the head is complete, 0 when more bytes are needed, or
 * a negative error.
 */
static int32_t parse_fields(struct head *h, const uint8_t *buf, size_t p, size_t end, int32_t *out,
                            size_t *head_end) {
  for (;;) {
    if (p >= end) return PAL_INCOMPLETE;
    uint8_t b = buf[p];
    if (b == '\r') {
      if (p + 1 >= end) return PAL_INCOMPLETE;
      if (buf[p + 1] != '\n') return PAL_E_BAD_REQUEST;
      *head_end = p + 2;
      return 1;
    }
    if (b == '\n') return PAL_E_BAD_REQUEST;
    if (is_ows(b)) return PAL_E_OBS_FOLD;
    if (h->header_count == PAL_MAX_HEADERS) return PAL_E_TOO_MANY_HEADERS;

    size_t name_start = p;
    while (p < end && (char_class[buf[p]] & CC_TCHAR)) p++;
    if (p >= end) return PAL_INCOMPLETE;
    if (buf[p] != ':' || p == name_start) return PAL_E_BAD_HEADER_NAME;
    size_t name_end = p++;

    while (p < end && is_ows(buf[p])) p++;
    size_t value_start = p;
    p = skip_class(buf, p, end, CC_VALUE, 0x20);
    if (p >= end) return PAL_INCOMPLETE;
    if (buf[p] != '\r') return buf[p] == '\n' ? PAL_E_BAD_REQUEST : PAL_E_BAD_HEADER_VALUE;
    if (p + 1 >= end) return PAL_INCOMPLETE;
    if (buf[p + 1] != '\n') return PAL_E_BAD_REQUEST;
    size_t value_end = p;
    while (value_end > value_start && is_ows(buf[value_end - 1])) value_end--;
    p += 2;

    int32_t *slot = out + OUT_HEADERS + 4 * h->header_count;
    slot[0] = (int32_t)name_start;
    slot[1] = (int32_t)name_end;
    slot[2] = (int32_t)value_start;
    slot[3] = (int32_t)value_end;
    h->header_count++;

    int32_t r = on_field(h, buf, name_start, name_end, value_start, value_end);
    if (r < 0) return r;
  }
}

static int32_t connection_flags(const struct head *h) {
  int32_t flags = 0;
  if (h->connection_close == 0 && (h->version == 1 || h->connection_keep_alive)) flags |= PAL_F_KEEP_ALIVE;
  /* HTTP/1.0 has no Upgrade (RFC 9110 7.8: ignore it there). */
  if (h->version == 1 && h->connection_upgrade && h->has_upgrade) flags |= PAL_F_UPGRADE;
  if (h->connection_other) flags |= PAL_F_HOP_HEADERS;
  if (h->hop_lines) flags |= PAL_F_HOP_LINES;
  return flags;
}

static void write_content_length(const struct head *h, int32_t *out) {
  out[OUT_CL_HI] = (int32_t)(uint32_t)(h->content_length >> 32);
  out[OUT_CL_LO] = (int32_t)(uint32_t)(h->content_length & 0xffffffffu);
}

/*
 * Check the request-target form against the method (RFC 9112 3.2) and find
 * the path span. For absolute-form the span starts at the path and the
 * authority's host span is returned through auth_start and auth_end.
 * *complex is set when the path holds '%', '#', "//" or "/." and so may
 * differ from its normal form (see normalise_path).
 */
static int32_t classify_target(const uint8_t *buf, size_t ts, size_t te, int32_t method, size_t *path_start,
                               size_t *path_end, size_t *auth_start, size_t *auth_end, int *complex) {
  size_t n = te - ts;
  int search_query = 1;
  if (method == PAL_M_CONNECT) {
    size_t host_end;
    if (!valid_authority(buf, ts, te, 1, &host_end)) return PAL_E_BAD_TARGET;
    *path_start = ts;
    search_query = 0;
  } else if (buf[ts] == '/') {
    *path_start = ts;
  } else if (n == 1 && buf[ts] == '*') {
    if (method != PAL_M_OPTIONS) return PAL_E_BAD_TARGET;
    *path_start = ts;
    search_query = 0;
  } else {
    size_t a;
    if (n > 7 && span_equals_lower(buf, ts, ts + 7, "http://", 7)) {
      a = ts + 7;
    } else if (n > 8 && span_equals_lower(buf, ts, ts + 8, "https://", 8)) {
      a = ts + 8;
    } else {
      return PAL_E_BAD_TARGET;
    }
    size_t slash = a;
    while (slash < te && buf[slash] != '/') slash++;
    size_t host_end;
    if (slash >= te || !valid_authority(buf, a, slash, 0, &host_end)) return PAL_E_BAD_TARGET;
    *auth_start = a;
    *auth_end = host_end;
    *path_start = slash;
  }
  size_t q = *path_start;
  int found = 0;
  if (search_query) {
    /*
     * One class lookup per byte finds the '?' and what makes a path complex.
     * buf[te] is the SP that ended the target, and SP is marked too, so the
     * inner loop needs no bound check: it costs what the plain '?' search did.
     */
    for (;;) {
      while (!(char_class[buf[q]] & CC_PATH_MARK)) q++;
      uint8_t b = buf[q];
      if (b == '/') {
        uint8_t next = buf[q + 1]; /* q < te, so at most the SP */
        if (next == '/' || next == '.') found = 1;
      } else if (b == '%' || b == '#') {
        found = 1;
      } else {
        break; /* '?' or the SP at te */
      }
      q++;
    }
  } else {
    q = te;
  }
  *path_end = q;
  *complex = found;
  return 0;
}

enum uri_state { URI_USUAL, URI_SLASH, URI_DOT, URI_DOT_DOT };

/* Back up over "/..": drop it and the segment before it, leaving u just after that segment's '/'. */
static int32_t drop_dot_dot(const uint8_t *dst, int32_t u) {
  u -= 4;
  for (;;) {
    if (u < 0) return PAL_E_BAD_TARGET;
    if (dst[u] == '/') return u + 1;
    u--;
  }
}

static int hex_digit(uint8_t b) {
  if (b >= '0' && b <= '9') return b - '0';
  uint8_t c = (uint8_t)(b | 0x20);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/*
 * $uri, as nginx builds it (ngx_http_parse_complex_uri with the default
 * merge_slashes on), from a path that starts with '/':
 *  - %XX is decoded; a '%' not followed by two hex digits, and %00, are 400.
 *    The decoded byte is then read as if it had been sent raw, so %2F is a
 *    '/' (it separates, merges and takes part in dot segments) and %2E a '.';
 *    only a decoded '%', '#' or '?' is kept as a plain byte.
 *  - runs of '/' become one;
 *  - "/." segments are dropped and "/.." removes the segment before it; a
 *    ".." that would climb above the root is 400;
 *  - a raw '#' ends the path (nginx takes it for a fragment);
 *  - case is kept, and nothing else ('+', ';', bytes >= 0x80) is changed.
 * APISIX matches routes on this $uri (ctx.var.uri) and gives it to plugins.
 * (APISIX 3.x also sets ctx.var.request_uri to $uri plus the query, keeping
 * the raw one as real_request_uri; here request_uri stays the raw target.)
 * What goes upstream is the client's raw target: APISIX leaves
 * $upstream_uri empty unless a plugin (proxy-rewrite) sets it, and nginx's
 * proxy_pass then sends the unparsed request URI as it came.
 * nginx only runs this when its request-line scan saw "/.", "//", '%' or
 * '#'; classify_target flags the same, so other paths cost nothing here.
 *
 * Writes the normal form of buf[s, e) to dst (its length is at most e - s).
 * Returns its length, or PAL_E_BAD_TARGET.
 */
static int32_t normalise_path(const uint8_t *buf, size_t s, size_t e, uint8_t *dst) {
  enum uri_state state = URI_USUAL;
  int32_t u = 0;
  size_t p = s;
  while (p < e) {
    uint8_t ch = buf[p++];
    if (ch == '#') break;
    if (ch == '%') {
      if (e - p < 2) return PAL_E_BAD_TARGET;
      int hi = hex_digit(buf[p]), lo = hex_digit(buf[p + 1]);
      if (hi < 0 || lo < 0) return PAL_E_BAD_TARGET;
      p += 2;
      ch = (uint8_t)(hi << 4 | lo);
      if (ch == 0) return PAL_E_BAD_TARGET;
      if (ch == '%' || ch == '#' || ch == '?') {
        dst[u++] = ch;
        state = URI_USUAL;
        continue;
      }
    }
    switch (state) {
      case URI_USUAL:
        if (ch == '/') state = URI_SLASH;
        dst[u++] = ch;
        break;
      case URI_SLASH:
        if (ch == '/') break; /* merge_slashes */
        state = ch == '.' ? URI_DOT : URI_USUAL;
        dst[u++] = ch;
        break;
      case URI_DOT:
        if (ch == '/') {
          state = URI_SLASH;
          u--; /* "/./" -> "/" */
        } else {
          state = ch == '.' ? URI_DOT_DOT : URI_USUAL;
          dst[u++] = ch;
        }
        break;
      case URI_DOT_DOT:
        if (ch == '/') {
          state = URI_SLASH;
          u = drop_dot_dot(dst, u);
          if (u < 0) return u;
        } else {
          state = URI_USUAL;
          dst[u++] = ch;
        }
        break;
    }
  }
  if (state == URI_DOT) u--; /* a final "/." leaves its '/' */
  if (state == URI_DOT_DOT) u = drop_dot_dot(dst, u);
  return u;
}

/* The request head without routing; writes every out[] slot it owns but OUT_STATUS. */
static int32_t parse_request_head(const uint8_t *buf, uint32_t off, uint32_t len, int32_t *out) {
  for (int i = OUT_METHOD; i <= OUT_HEADER_COUNT; i++) out[i] = 0;
  out[OUT_ROUTE_COUNT] = -1;
  out[OUT_URI_LEN] = -1;
  size_t end = end_of_input(off, len);
  size_t p = off;

  /* method SP */
  while (p < end && (char_class[buf[p]] & CC_TCHAR)) p++;
  if (p >= end) return PAL_INCOMPLETE;
  if (buf[p] != ' ' || p == off) return (buf[p] == '\r' || buf[p] == '\n') ? PAL_E_BAD_REQUEST : PAL_E_BAD_METHOD;
  size_t method_end = p++;
  int32_t method = method_code(buf + off, method_end - off);

  /* request-target SP */
  size_t target_start = p;
  p = skip_class(buf, p, end, CC_TARGET, 0x21);
  if (p >= end) return PAL_INCOMPLETE;
  if (buf[p] != ' ' || p == target_start) return (buf[p] == '\r' || buf[p] == '\n') ? PAL_E_BAD_REQUEST : PAL_E_BAD_TARGET;
  size_t target_end = p++;
  size_t path_start = 0, path_end = 0, auth_start = 0, auth_end = 0;
  int complex = 0;
  int32_t r = classify_target(buf, target_start, target_end, method, &path_start, &path_end, &auth_start, &auth_end,
                              &complex);
  if (r < 0) return r;

  /*
   * HTTP-version CRLF: "HTTP/1.1" or "HTTP/1.0" that has fully arrived is
   * checked at once; anything else byte by byte, so garbage fails before the
   * line ends and each error keeps its code.
   */
  static const char version_prefix[] = "HTTP/";
  const uint8_t *v = buf + p;
  if (end - p >= 10 && is_http_1x(v) && v[8] == '\r' && v[9] == '\n') {
    p += 10;
  } else {
    for (size_t i = 0; i < 10; i++, p++) {
      if (p >= end) return PAL_INCOMPLETE;
      uint8_t b = buf[p];
      if (i < 5) {
        if (b != (uint8_t)version_prefix[i]) return PAL_E_BAD_REQUEST;
      } else if (i == 5 || i == 7) {
        if (!(char_class[b] & CC_DIGIT)) return PAL_E_BAD_REQUEST;
        if (i == 7 && (buf[p - 2] != '1' || b > '1')) return PAL_E_BAD_VERSION;
      } else if (i == 6) {
        if (b != '.') return PAL_E_BAD_REQUEST;
      } else if (i == 8) {
        if (b != '\r') return PAL_E_BAD_REQUEST;
      } else if (b != '\n') {
        return PAL_E_BAD_REQUEST;
      }
    }
  }
  int32_t version = buf[p - 3] - '0';

  out[OUT_METHOD] = method;
  out[OUT_METHOD_END] = (int32_t)method_end;
  out[OUT_TARGET_START] = (int32_t)path_start;
  out[OUT_TARGET_END] = (int32_t)target_end;
  out[OUT_PATH_END] = (int32_t)path_end;
  out[OUT_VERSION] = version;
  if (complex) {
    /* Rejected here, at the end of the request line, as nginx does before reading any header. */
    if (path_end - path_start > PAL_URI_CAPACITY) return PAL_E_URI_TOO_LONG;
    int32_t uri_len = normalise_path(buf, path_start, path_end, (uint8_t *)(out + OUT_URI));
    if (uri_len < 0) return uri_len;
    out[OUT_URI_LEN] = uri_len;
  }

  struct head h;
  head_init(&h, 1, version);
  size_t head_end = 0;
  r = parse_fields(&h, buf, p, end, out, &head_end);
  if (r <= 0) return r;
  if (version == 1 && h.host_count == 0) return PAL_E_MISSING_HOST;

  int32_t flags = connection_flags(&h);
  if (h.chunked) flags |= PAL_F_CHUNKED;
  if (h.has_content_length) {
    flags |= PAL_F_CONTENT_LENGTH;
    write_content_length(&h, out);
  }
  /* RFC 9110 10.1.1: a 100-continue expectation in an HTTP/1.0 request is ignored. */
  if (h.expect_continue && version == 1) flags |= PAL_F_EXPECT_CONTINUE;
  if (h.host_count > 0) flags |= PAL_F_HAS_HOST;
  if (auth_end > 0) {
    out[OUT_HOST_START] = (int32_t)auth_start;
    out[OUT_HOST_END] = (int32_t)auth_end;
  } else if (h.host_count > 0) {
    out[OUT_HOST_START] = (int32_t)h.host_start;
    out[OUT_HOST_END] = (int32_t)h.host_end;
  }
  out[OUT_FLAGS] = flags;
  out[OUT_HEADER_COUNT] = h.header_count;
  return (int32_t)(head_end - off);
}

int32_t pal_parse_request(const uint8_t *buf, uint32_t off, uint32_t len, int32_t router, const uint8_t *ip,
                          uint32_t ip_len, int32_t *out) {
  int32_t r = parse_request_head(buf, off, len, out);
  if (r > 0 && router >= 0) {
    int32_t matched = pal_route_match(router, buf, ip, ip_len, out);
    if (matched < 0) r = matched;
  }
  out[OUT_STATUS] = r;
  return r;
}

static int32_t parse_response_head(const uint8_t *buf, uint32_t off, uint32_t len, int32_t req_method,
                                   int32_t *out) {
  for (int i = OUT_METHOD; i <= OUT_HEADER_COUNT; i++) out[i] = 0;
  size_t end = end_of_input(off, len);
  size_t p = off;

  /*
   * "HTTP/1." DIGIT SP 3DIGIT. A valid one that has fully arrived is checked at
   * once; otherwise each byte is checked as it arrives, for the exact answer.
   */
  static const char status_prefix[] = "HTTP/1.";
  int32_t status = 0;
  const uint8_t *line = buf + p;
  if (end - p >= 12 && is_http_1x(line) && line[8] == ' ' && line[9] >= '1' && line[9] <= '5' &&
      (char_class[line[10]] & CC_DIGIT) && (char_class[line[11]] & CC_DIGIT)) {
    status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    p += 12;
  } else {
    for (size_t i = 0; i < 12; i++, p++) {
      if (p >= end) return PAL_INCOMPLETE;
      uint8_t b = buf[p];
      if (i < 7) {
        if (b != (uint8_t)status_prefix[i]) return PAL_E_BAD_STATUS;
      } else if (i == 7) {
        if (b != '0' && b != '1') return PAL_E_BAD_STATUS;
      } else if (i == 8) {
        if (b != ' ') return PAL_E_BAD_STATUS;
      } else {
        if (!(char_class[b] & CC_DIGIT)) return PAL_E_BAD_STATUS;
        status = status * 10 + (b - '0');
        if (i == 9 && (b < '1' || b > '5')) return PAL_E_BAD_STATUS;
      }
    }
  }
  int32_t version = buf[off + 7] - '0';

  /* [ SP reason ] CRLF; `HTTP/1.1 200\r\n` is accepted too */
  if (p >= end) return PAL_INCOMPLETE;
  size_t reason_start;
  if (buf[p] == ' ') {
    reason_start = ++p;
    while (p < end && (char_class[buf[p]] & CC_VALUE)) p++;
    if (p >= end) return PAL_INCOMPLETE;
  } else {
    reason_start = p;
  }
  if (buf[p] != '\r') return PAL_E_BAD_STATUS;
  if (p + 1 >= end) return PAL_INCOMPLETE;
  if (buf[p + 1] != '\n') return PAL_E_BAD_STATUS;
  size_t reason_end = p;
  p += 2;

  out[OUT_METHOD] = status;
  out[OUT_TARGET_START] = (int32_t)reason_start;
  out[OUT_TARGET_END] = (int32_t)reason_end;
  out[OUT_VERSION] = version;

  struct head h;
  head_init(&h, 0, version);
  size_t head_end = 0;
  int32_t r = parse_fields(&h, buf, p, end, out, &head_end);
  if (r <= 0) return r;

  int32_t flags = connection_flags(&h);
  if (h.has_content_length) write_content_length(&h, out);
  if (req_method == PAL_M_HEAD || status < 200 || status == 204 || status == 304) {
    flags |= PAL_F_NO_BODY;
  } else if (h.transfer_encoding_count > 0) {
    flags |= h.chunked ? PAL_F_CHUNKED : PAL_F_READ_TO_CLOSE;
  } else if (h.has_content_length) {
    flags |= PAL_F_CONTENT_LENGTH;
  } else {
    flags |= PAL_F_READ_TO_CLOSE;
  }
  if (flags & PAL_F_READ_TO_CLOSE) flags &= ~PAL_F_KEEP_ALIVE;
  out[OUT_FLAGS] = flags;
  out[OUT_HEADER_COUNT] = h.header_count;
  return (int32_t)(head_end - off);
}

int32_t pal_parse_response(const uint8_t *buf, uint32_t off, uint32_t len, int32_t req_method, int32_t *out) {
  int32_t r = parse_response_head(buf, off, len, req_method, out);
  out[OUT_STATUS] = r;
  return r;
}

/* ---- chunked body scanner ---- */

enum chunk_phase {
  CP_SIZE_START = 0, /* first hex digit of a chunk-size */
  CP_SIZE,           /* more hex digits, ';' or CR */
  CP_EXT,            /* chunk-ext bytes up to CR */
  CP_SIZE_LF,        /* LF ending the size line */
  CP_DATA,           /* chunk data, CHUNK_REMAIN bytes left */
  CP_DATA_CR,        /* CR after the data */
  CP_DATA_LF,        /* LF after the data */
  CP_TRAILER_START,  /* start of a trailer line, or CR of the final empty line */
  CP_TRAILER_NAME,   /* field-name up to ':' */
  CP_TRAILER_VALUE,  /* field-value up to CR */
  CP_TRAILER_LF,     /* LF ending a trailer line */
  CP_FINAL_LF,       /* LF ending the message */
  CP_FAILED,         /* an error was returned; every later call fails too */
};

static int hex_value(uint8_t b) {
  if (b <= '9') return b - '0';
  return (b | 0x20) - 'a' + 10;
}

/*
 * CHUNK_AUX counts the bytes of the current size line (digits, then ext) and,
 * after the last chunk, the bytes of the trailer section, to bound both.
 */
int32_t pal_chunked_scan(const uint8_t *buf, uint32_t off, uint32_t len, int32_t *state) {
  if (state[CHUNK_DONE]) return 0;
  int32_t phase = state[CHUNK_PHASE];
  if (phase < CP_SIZE_START || phase >= CP_FAILED) return PAL_E_BAD_CHUNK;
  uint64_t remain = ((uint64_t)(uint32_t)state[CHUNK_REMAIN_HI] << 32) | (uint32_t)state[CHUNK_REMAIN_LO];
  uint32_t aux = (uint32_t)state[CHUNK_AUX];
  size_t p = off;
  size_t end = (size_t)off + (len < MAX_OFFSET ? len : MAX_OFFSET);
  int32_t result = 0;

  while (p < end && result == 0) {
    uint8_t b = buf[p];
    switch (phase) {
      case CP_SIZE_START:
        if (!(char_class[b] & CC_HEX)) {
          result = PAL_E_BAD_CHUNK;
          break;
        }
        remain = (uint64_t)hex_value(b);
        aux = 1;
        phase = CP_SIZE;
        p++;
        break;
      case CP_SIZE:
        if (char_class[b] & CC_HEX) {
          uint64_t next = remain * 16 + (uint64_t)hex_value(b);
          if (aux >= MAX_CHUNK_SIZE_DIGITS || next > MAX_SAFE_INTEGER) {
            result = PAL_E_CHUNK_TOO_BIG;
            break;
          }
          remain = next;
          aux++;
        } else if (b == ';') {
          aux++;
          phase = CP_EXT;
        } else if (b == '\r') {
          phase = CP_SIZE_LF;
        } else {
          result = PAL_E_BAD_CHUNK;
          break;
        }
        p++;
        break;
      case CP_EXT:
        if (b == '\r') {
          phase = CP_SIZE_LF;
        } else if ((char_class[b] & CC_VALUE) && ++aux <= MAX_CHUNK_LINE) {
          /* ext bytes are forwarded as they are, only checked */
        } else {
          result = PAL_E_BAD_CHUNK;
          break;
        }
        p++;
        break;
      case CP_SIZE_LF:
        if (b != '\n') {
          result = PAL_E_BAD_CHUNK;
          break;
        }
        aux = 0;
        phase = remain == 0 ? CP_TRAILER_START : CP_DATA;
        p++;
        break;
      case CP_DATA: {
        /* Skip the data in one step: it is forwarded, never looked at. */
        size_t available = end - p;
        size_t take = remain < available ? (size_t)remain : available;
        p += take;
        remain -= take;
        if (remain == 0) phase = CP_DATA_CR;
        break;
      }
      case CP_DATA_CR:
        if (b != '\r') {
          result = PAL_E_BAD_CHUNK;
          break;
        }
        phase = CP_DATA_LF;
        p++;
        break;
      case CP_DATA_LF:
        if (b != '\n') {
          result = PAL_E_BAD_CHUNK;
          break;
        }
        phase = CP_SIZE_START;
        p++;
        break;
      default: /* trailer section */
        if (++aux > MAX_TRAILER_BYTES) {
          result = PAL_E_BAD_CHUNK;
          break;
        }
        if (phase == CP_TRAILER_START) {
          if (b == '\r') {
            phase = CP_FINAL_LF;
          } else if (char_class[b] & CC_TCHAR) {
            phase = CP_TRAILER_NAME;
          } else {
            result = PAL_E_BAD_CHUNK;
            break;
          }
        } else if (phase == CP_TRAILER_NAME) {
          if (b == ':') {
            phase = CP_TRAILER_VALUE;
          } else if (!(char_class[b] & CC_TCHAR)) {
            result = PAL_E_BAD_CHUNK;
            break;
          }
        } else if (phase == CP_TRAILER_VALUE) {
          if (b == '\r') {
            phase = CP_TRAILER_LF;
          } else if (!(char_class[b] & CC_VALUE)) {
            result = PAL_E_BAD_CHUNK;
            break;
          }
        } else if (phase == CP_TRAILER_LF) {
          if (b != '\n') {
            result = PAL_E_BAD_CHUNK;
            break;
          }
          phase = CP_TRAILER_START;
        } else { /* CP_FINAL_LF */
          if (b != '\n') {
            result = PAL_E_BAD_CHUNK;
            break;
          }
          state[CHUNK_DONE] = 1;
          result = 1; /* stop right after the message, leaving pipelined bytes */
        }
        p++;
        break;
    }
  }

  if (result < 0) phase = CP_FAILED;
  state[CHUNK_PHASE] = phase;
  state[CHUNK_REMAIN_HI] = (int32_t)(uint32_t)(remain >> 32);
  state[CHUNK_REMAIN_LO] = (int32_t)(uint32_t)(remain & 0xffffffffu);
  state[CHUNK_AUX] = (int32_t)aux;
  return result < 0 ? result : (int32_t)(p - off);
}
