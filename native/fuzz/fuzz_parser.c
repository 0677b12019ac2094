/*
 * libFuzzer target for native/parser.c. Build and run it with scripts/fuzz.sh.
 *
 * Input layout: the first byte picks the entry point (byte % 3: '0' request,
 * '1' response, '2' chunked scanner) and, through byte / 3, the offset the
 * message is placed at, the request method a response answers and where a
 * chunked body is split; the rest is the message. Seeds in seeds/ start with
 * that byte.
 *
 * Besides the sanitizers, each run checks properties the callers rely on:
 * out[OUT_STATUS] mirrors the return value, every span lies inside the head,
 * a prefix of the input parses to 0 or to the same result, a chunked body
 * scanned in pieces gives the same result as in one call, and $uri (the
 * normalised path) is normal: no "//", no "." or ".." segment, no NUL, never
 * longer than the path, the same again when normalised twice, and a path
 * taken as it is had nothing to normalise.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* The fuzzer never routes (router = -1), so router.c is not linked. */
int32_t pal_route_match(int32_t router, const uint8_t *buf, const uint8_t *ip, uint32_t ip_len, int32_t *out) {
  (void)router;
  (void)buf;
  (void)ip;
  (void)ip_len;
  (void)out;
  abort();
}

#define CHECK(cond)  \
  do {               \
    if (!(cond)) abort(); \
  } while (0)

static const uint8_t loopback[4] = {127, 0, 0, 1};

static int32_t parse(int is_request, const uint8_t *buf, uint32_t off, uint32_t len, int32_t method, int32_t *out) {
  for (int i = 0; i < OUT_SIZE; i++) out[i] = 0x5a5a5a5a;
  int32_t r = is_request ? pal_parse_request(buf, off, len, -1, loopback, 4, out)
                         : pal_parse_response(buf, off, len, method, out);
  CHECK(out[OUT_STATUS] == r);
  CHECK(r >= PAL_E_URI_TOO_LONG && r != PAL_E_ROUTER && r <= (int32_t)len);
  return r;
}

static void check_span(int32_t start, int32_t end, uint32_t lo, uint32_t hi) {
  CHECK(start >= (int32_t)lo && start <= end && end <= (int32_t)hi);
}

/* Nothing in a path taken as it is would change if it were normalised. */
static void check_plain_path(const uint8_t *buf, int32_t ps, int32_t pe) {
  if (pe <= ps || buf[ps] != '/') return; /* CONNECT authority or OPTIONS * */
  for (int32_t i = ps; i < pe; i++) {
    CHECK(buf[i] != '%' && buf[i] != '#');
    if (buf[i] == '/' && i + 1 < pe) CHECK(buf[i + 1] != '/' && buf[i + 1] != '.');
  }
}

/* The normal form of a path, as normalise_path in parser.c promises it. */
static void check_normal_path(const uint8_t *u, int32_t n) {
  CHECK(u[0] == '/');
  int reparseable = 1;
  for (int32_t i = 0; i < n; i++) {
    CHECK(u[i] != 0);
    if (u[i] == '%' || u[i] == '#' || u[i] == '?' || u[i] <= ' ' || u[i] == 0x7f) reparseable = 0;
    if (u[i] != '/') continue;
    int32_t seg = i + 1, end = seg;
    while (end < n && u[end] != '/') end++;
    CHECK(end > seg || end == n); /* slashes merged: only the last segment may be empty */
    CHECK(!(end - seg == 1 && u[seg] == '.'));
    CHECK(!(end - seg == 2 && u[seg] == '.' && u[seg + 1] == '.'));
  }
  if (!reparseable) return; /* a decoded '%', '#', '?' or CTL would be read differently the second time */
  /* Normalising the normal form again changes nothing. */
  static uint8_t again[PAL_URI_CAPACITY + 32];
  static int32_t again_out[OUT_SIZE];
  uint32_t len = 0;
  memcpy(again, "GET ", 4);
  len += 4;
  memcpy(again + len, u, (size_t)n);
  len += (uint32_t)n;
  memcpy(again + len, " HTTP/1.0\r\n\r\n", 13);
  len += 13;
  CHECK(pal_parse_request(again, 0, len, -1, loopback, 4, again_out) == (int32_t)len);
  if (again_out[OUT_URI_LEN] < 0) {
    CHECK(again_out[OUT_PATH_END] - again_out[OUT_TARGET_START] == n);
  } else {
    CHECK(again_out[OUT_URI_LEN] == n);
    CHECK(memcmp(again_out + OUT_URI, u, (size_t)n) == 0);
  }
}

static void check_uri(const uint8_t *buf, const int32_t *out) {
  int32_t ps = out[OUT_TARGET_START], pe = out[OUT_PATH_END], n = out[OUT_URI_LEN];
  if (n < 0) {
    CHECK(n == -1);
    check_plain_path(buf, ps, pe);
    return;
  }
  CHECK(pe > ps && buf[ps] == '/');
  CHECK(n >= 1 && n <= pe - ps && n <= PAL_URI_CAPACITY);
  check_normal_path((const uint8_t *)(out + OUT_URI), n);
}

static void fuzz_head(int is_request, const uint8_t *buf, uint32_t off, uint32_t len, int32_t method) {
  int32_t out[OUT_SIZE];
  int32_t r = parse(is_request, buf, off, len, method, out);
  if (r > 0) {
    uint32_t end = off + (uint32_t)r;
    CHECK(buf[end - 2] == '\r' && buf[end - 1] == '\n');
    check_span(out[OUT_TARGET_START], out[OUT_TARGET_END], off, end);
    if (is_request) {
      CHECK(out[OUT_METHOD] >= PAL_M_OTHER && out[OUT_METHOD] <= PAL_M_PURGE);
      check_span((int32_t)off, out[OUT_METHOD_END], off, end);
      check_span(out[OUT_TARGET_START], out[OUT_PATH_END], off, (uint32_t)out[OUT_TARGET_END]);
      if (out[OUT_HOST_END] != 0) check_span(out[OUT_HOST_START], out[OUT_HOST_END], off, end);
      CHECK(out[OUT_ROUTE_COUNT] == -1);
      check_uri(buf, out);
    } else {
      CHECK(out[OUT_METHOD] >= 100 && out[OUT_METHOD] <= 599);
    }
    CHECK(out[OUT_VERSION] == 0 || out[OUT_VERSION] == 1);
    CHECK(out[OUT_HEADER_COUNT] >= 0 && out[OUT_HEADER_COUNT] <= PAL_MAX_HEADERS);
    for (int32_t i = 0; i < out[OUT_HEADER_COUNT]; i++) {
      const int32_t *h = out + OUT_HEADERS + 4 * i;
      CHECK(h[0] < h[1]);
      check_span(h[0], h[1], off, end);
      check_span(h[2], h[3], (uint32_t)h[1] + 1, end);
    }
    int32_t flags = out[OUT_FLAGS];
    if (flags & PAL_F_CONTENT_LENGTH) CHECK(!(flags & PAL_F_CHUNKED));
    uint64_t cl = ((uint64_t)(uint32_t)out[OUT_CL_HI] << 32) | (uint32_t)out[OUT_CL_LO];
    CHECK(cl <= 9007199254740991ULL);
    /* exactly the head parses to the same length, one byte less is incomplete */
    CHECK(parse(is_request, buf, off, (uint32_t)r, method, out) == r);
    CHECK(parse(is_request, buf, off, (uint32_t)r - 1, method, out) == 0);
  } else if (len > 0) {
    /* an error or an incomplete head: every prefix is incomplete or the same */
    int32_t half = parse(is_request, buf, off, len / 2, method, out);
    CHECK(half == 0 || half == r);
    int32_t most = parse(is_request, buf, off, len - 1, method, out);
    CHECK(most == 0 || most == r);
  }
}

/* Scan buf[off, off+len) in pieces of at most `piece` bytes; returns consumed or the error. */
static int32_t scan_in_pieces(const uint8_t *buf, uint32_t off, uint32_t len, uint32_t piece, int32_t *state) {
  memset(state, 0, sizeof(int32_t) * CHUNK_STATE_SIZE);
  uint32_t consumed = 0;
  for (uint32_t from = 0; from < len && !state[CHUNK_DONE]; from += piece) {
    uint32_t n = len - from < piece ? len - from : piece;
    int32_t r = pal_chunked_scan(buf, off + from, n, state);
    if (r < 0) return r;
    CHECK((uint32_t)r <= n);
    CHECK(state[CHUNK_DONE] || (uint32_t)r == n);
    consumed += (uint32_t)r;
  }
  return (int32_t)consumed;
}

static void fuzz_chunked(const uint8_t *buf, uint32_t off, uint32_t len, uint32_t split) {
  int32_t whole[CHUNK_STATE_SIZE], pieces[CHUNK_STATE_SIZE], bytewise[CHUNK_STATE_SIZE];
  int32_t r = scan_in_pieces(buf, off, len, len > 0 ? len : 1, whole);
  if (r > 0 && whole[CHUNK_DONE]) {
    const uint8_t *last = buf + off + r;
    CHECK(last[-2] == '\r' && last[-1] == '\n');
  }
  CHECK(scan_in_pieces(buf, off, len, split, pieces) == r);
  CHECK(pieces[CHUNK_DONE] == whole[CHUNK_DONE]);
  CHECK(scan_in_pieces(buf, off, len, 1, bytewise) == r);
  CHECK(bytewise[CHUNK_DONE] == whole[CHUNK_DONE]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 1 << 20) return 0;
  uint8_t selector = data[0];
  uint32_t off = (uint32_t)(selector / 3) % 4;
  uint32_t len = (uint32_t)(size - 1);
  /* An exact-size heap copy, so reading one byte past the message is caught by ASan. */
  uint8_t *buf = malloc(off + len > 0 ? off + len : 1);
  if (buf == NULL) return 0;
  memset(buf, 'A', off);
  memcpy(buf + off, data + 1, len);
  switch (selector % 3) {
    case 0:
      fuzz_head(1, buf, off, len, PAL_M_GET);
      break;
    case 1:
      fuzz_head(0, buf, off, len, (int32_t)(selector / 12) % 4 == 0 ? PAL_M_HEAD : PAL_M_GET);
      break;
    default:
      fuzz_chunked(buf, off, len, 1 + (uint32_t)(selector / 12) % 7);
      break;
  }
  free(buf);
  return 0;
}
