/*
 * Route matching with APISIX `radixtree_host_uri` semantics, mirrored line for
 * line in src/native/js/router.ts.
 *
 * Spec format (written by src/native/router-spec.ts; integers little-endian):
 *
 *   header   u32 magic 0x31545250 ("PRT1"), u32 route_count
 *   route    i32 priority, u32 method_mask (bit 1 << PAL_M_*; 0 = any),
 *            u16 host_count, u16 uri_count, u16 addr_count, u16 reserved (0)
 *            host_count x { u8 len, bytes }            '*' first = wildcard on the rest (a suffix)
 *            uri_count  x { u16 uri_len, u16 static_len, static bytes, u8 flags (bit 0 trailing '*'),
 *                           u8 token_count, token_count x { u8 type: 0 literal (u16 len, bytes)
 *                                                          | 1 param | 2 catch-all (last) } }
 *            addr_count x { u8 prefix_bits (<= 128), 16 bytes }   IPv4 as ::ffff:a.b.c.d, bits + 96
 *   Nothing may follow the last route. Anything else is rejected with PAL_E_ROUTER, as are
 *   tables over 2^22 routes, 2^24 hosts or 2^24 (host, uri) pairs.
 *
 * Candidate order for one request:
 *   host groups: the exact host, then wildcard suffixes longest first (a suffix
 *   matches a strictly longer host, case-insensitively), then the hostless routes;
 *   within a group: exact paths (priority desc, index asc), then prefix/parameter
 *   paths by static prefix length desc, priority desc, uri length desc, index asc.
 *   Each candidate must pass the method mask and remote_addrs; a route is listed
 *   once, at its first position; at most PAL_MAX_CANDIDATES are written.
 *
 * Addresses: every address is compared as 16 bytes, IPv4 in its IPv4-mapped form
 *   ::ffff:a.b.c.d. So a v4 client matches a v4 CIDR, or a v6 CIDR that contains
 *   its mapped form (::ffff:0:0/96, ::/0); a v6 client ::ffff:a.b.c.d matches v4
 *   CIDRs. A client address that is neither 4 nor 16 bytes matches no remote_addrs.
 *
 * Structures: one open-addressing hash table per router holds exact hosts,
 * wildcard suffixes (value: host group) and, per group, exact paths and static
 * prefixes (value: a run of sorted uri entries). A prefix lookup probes only the
 * distinct static-prefix lengths present in the group, longest first, with the
 * path's FNV-1a prefix hashes computed once per match. Nothing is allocated
 * while matching. Routers live in a table of handles; building a new one never
 * touches the others, and a freed handle is reused by the next build.
 * Single-threaded per process.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define SPEC_MAGIC 0x31545250u
#define MAX_ROUTES (1u << 22)
#define MAX_ENTRIES (1u << 24) /* (host group, uri) pairs over the whole table */
#define MAX_HOSTS (1u << 24)   /* host names over the whole table */
#define PREFIX_HASH_CACHE 512  /* path prefix hashes kept on the stack; longer keys are hashed directly */
#define EMPTY_TAG 0xffffffffu

enum { KEY_HOST_EXACT = 0, KEY_HOST_SUFFIX = 1, KEY_PATH_EXACT = 2, KEY_PATH_PREFIX = 3 };
enum { TOKEN_LITERAL = 0, TOKEN_PARAM = 1, TOKEN_CATCH_ALL = 2 };

typedef struct {
  int32_t priority;
  uint32_t method_mask;
  uint32_t addr_first;
  uint32_t addr_count;
} route_t;

typedef struct {
  uint8_t bytes[16];
  uint32_t bits;
} addr_range_t;

/* One uri of one route in one host group. */
typedef struct {
  uint32_t group;
  uint32_t route;
  int32_t priority;
  uint32_t uri_len;
  uint32_t key_off; /* exact path or static prefix, in router->bytes */
  uint32_t key_len;
  uint32_t tokens_off; /* token bytes, in router->bytes */
  uint32_t token_count;
  uint32_t is_prefix; /* 0 exact path, 1 prefix/parameter path */
  uint32_t trailing;
} uri_entry_t;

typedef struct {
  uint32_t hash;
  uint32_t tag; /* KEY_HOST_* or (group << 2 | KEY_PATH_*); EMPTY_TAG for a free slot */
  uint32_t key_off;
  uint32_t key_len;
  uint32_t first; /* host keys: the group; path keys: first entry of the run */
  uint32_t count; /* path keys: entries in the run */
} slot_t;

typedef struct {
  uint32_t lengths_first; /* distinct static-prefix lengths, longest first, in router->lengths */
  uint32_t lengths_count;
} group_t;

typedef struct {
  uint8_t *bytes; /* private copy of the spec, hosts lower-cased; keys point in here */
  route_t *routes;
  addr_range_t *addrs;
  uri_entry_t *entries;
  uint32_t entry_count;
  group_t *groups;
  uint32_t group_count;
  uint32_t *lengths;
  uint32_t *suffix_lengths; /* distinct wildcard suffix lengths, longest first */
  uint32_t suffix_length_count;
  uint32_t max_path_key; /* longest exact path or static prefix */
  slot_t *slots;
  uint32_t slot_mask;
} router_t;

/* ---- hashing ---- */

#define FNV_OFFSET 2166136261u
#define FNV_PRIME 16777619u

static inline uint8_t ascii_lower(uint8_t c) { return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c; }

static inline uint32_t fnv_step(uint32_t h, uint8_t c) { return (h ^ c) * FNV_PRIME; }

/* Mix the key kind/group into the FNV state; FNV's low bits alone index the table poorly. */
static inline uint32_t finish_hash(uint32_t h, uint32_t tag) {
  h ^= tag * 0x9e3779b1u;
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

static uint32_t hash_bytes(const uint8_t *p, uint32_t len) {
  uint32_t h = FNV_OFFSET;
  for (uint32_t i = 0; i < len; i++) h = fnv_step(h, p[i]);
  return h;
}

static uint32_t hash_bytes_folded(const uint8_t *p, uint32_t len) {
  uint32_t h = FNV_OFFSET;
  for (uint32_t i = 0; i < len; i++) h = fnv_step(h, ascii_lower(p[i]));
  return h;
}

static int equal_folded(const uint8_t *request, const uint8_t *lower_key, uint32_t len) {
  for (uint32_t i = 0; i < len; i++)
    if (ascii_lower(request[i]) != lower_key[i]) return 0;
  return 1;
}

static const slot_t *lookup(const router_t *r, uint32_t tag, const uint8_t *key, uint32_t len, uint32_t fnv,
                            int fold) {
  uint32_t hash = finish_hash(fnv, tag);
  for (uint32_t i = hash & r->slot_mask;; i = (i + 1) & r->slot_mask) {
    const slot_t *s = &r->slots[i];
    if (s->tag == EMPTY_TAG) return NULL;
    if (s->hash == hash && s->tag == tag && s->key_len == len) {
      const uint8_t *stored = r->bytes + s->key_off;
      if (fold ? equal_folded(key, stored, len) : memcmp(key, stored, len) == 0) return s;
    }
  }
}

static slot_t *insert(router_t *r, uint32_t tag, uint32_t key_off, uint32_t key_len, uint32_t fnv) {
  uint32_t hash = finish_hash(fnv, tag);
  uint32_t i = hash & r->slot_mask;
  while (r->slots[i].tag != EMPTY_TAG) i = (i + 1) & r->slot_mask;
  slot_t *s = &r->slots[i];
  s->hash = hash;
  s->tag = tag;
  s->key_off = key_off;
  s->key_len = key_len;
  s->first = 0;
  s->count = 0;
  return s;
}

/* ---- spec reading ---- */

typedef struct {
  const uint8_t *p;
  uint32_t pos;
  uint32_t len;
  int bad;
} reader_t;

static inline int need(reader_t *rd, uint32_t n) {
  if (rd->bad || rd->len - rd->pos < n) {
    rd->bad = 1;
    return 0;
  }
  return 1;
}
static inline uint32_t rd_u8(reader_t *rd) { return need(rd, 1) ? rd->p[rd->pos++] : 0; }
static inline uint32_t rd_u16(reader_t *rd) {
  if (!need(rd, 2)) return 0;
  uint32_t v = (uint32_t)rd->p[rd->pos] | ((uint32_t)rd->p[rd->pos + 1] << 8);
  rd->pos += 2;
  return v;
}
static inline uint32_t rd_u32(reader_t *rd) {
  if (!need(rd, 4)) return 0;
  const uint8_t *q = rd->p + rd->pos;
  rd->pos += 4;
  return (uint32_t)q[0] | ((uint32_t)q[1] << 8) | ((uint32_t)q[2] << 16) | ((uint32_t)q[3] << 24);
}
static inline uint32_t rd_skip(reader_t *rd, uint32_t n) {
  uint32_t at = rd->pos;
  if (need(rd, n)) rd->pos += n;
  return at;
}

typedef struct {
  uint32_t routes;
  uint32_t hosts;
  uint32_t addrs;
  uint64_t entries;
  uint32_t max_hosts_per_route;
} spec_counts_t;

/*
 * Walk the spec once. Without a router it only validates and counts; with one
 * (second pass, spec known good) it fills routes, addresses, host groups and
 * uri entries. group_scratch holds the current route's host groups.
 */
static int walk_spec(reader_t *rd, spec_counts_t *counts, router_t *r, uint32_t *group_scratch) {
  if (rd_u32(rd) != SPEC_MAGIC) return -1;
  uint32_t route_count = rd_u32(rd);
  if (rd->bad || route_count > MAX_ROUTES || route_count > (rd->len - rd->pos) / 16) return -1;
  counts->routes = route_count;
  uint32_t addr_total = 0;
  for (uint32_t index = 0; index < route_count; index++) {
    int32_t priority = (int32_t)rd_u32(rd);
    uint32_t method_mask = rd_u32(rd);
    uint32_t host_count = rd_u16(rd);
    uint32_t uri_count = rd_u16(rd);
    uint32_t addr_count = rd_u16(rd);
    if (rd_u16(rd) != 0 || rd->bad) return -1;

    for (uint32_t h = 0; h < host_count; h++) {
      uint32_t len = rd_u8(rd);
      uint32_t at = rd_skip(rd, len);
      if (rd->bad) return -1;
      if (!r) continue;
      for (uint32_t i = 0; i < len; i++) r->bytes[at + i] = ascii_lower(r->bytes[at + i]);
      uint32_t tag = KEY_HOST_EXACT;
      if (len > 0 && r->bytes[at] == '*') {
        tag = KEY_HOST_SUFFIX;
        at++;
        len--;
      }
      uint32_t fnv = hash_bytes(r->bytes + at, len);
      const slot_t *found = lookup(r, tag, r->bytes + at, len, fnv, 0);
      if (!found) {
        slot_t *s = insert(r, tag, at, len, fnv);
        s->first = r->group_count++;
        r->groups[s->first].lengths_first = 0;
        r->groups[s->first].lengths_count = 0;
        if (tag == KEY_HOST_SUFFIX) r->suffix_lengths[r->suffix_length_count++] = len;
        found = s;
      }
      group_scratch[h] = found->first;
    }
    if (r && host_count == 0) group_scratch[0] = 0;
    uint32_t group_count = host_count ? host_count : 1;

    for (uint32_t u = 0; u < uri_count; u++) {
      uint32_t uri_len = rd_u16(rd);
      uint32_t static_len = rd_u16(rd);
      uint32_t static_off = rd_skip(rd, static_len);
      uint32_t flags = rd_u8(rd);
      uint32_t token_count = rd_u8(rd);
      uint32_t tokens_off = rd->pos;
      if (rd->bad || flags > 1) return -1;
      for (uint32_t t = 0; t < token_count; t++) {
        uint32_t type = rd_u8(rd);
        if (type == TOKEN_LITERAL) rd_skip(rd, rd_u16(rd));
        else if (type == TOKEN_CATCH_ALL && t + 1 != token_count) return -1;
        else if (type > TOKEN_CATCH_ALL) return -1;
      }
      if (rd->bad) return -1;
      counts->entries += group_count;
      if (counts->entries > MAX_ENTRIES) return -1;
      if (!r) continue;
      for (uint32_t g = 0; g < group_count; g++) {
        uri_entry_t *e = &r->entries[r->entry_count++];
        e->group = group_scratch[g];
        e->route = index;
        e->priority = priority;
        e->uri_len = uri_len;
        e->key_off = static_off;
        e->key_len = static_len;
        e->tokens_off = tokens_off;
        e->token_count = token_count;
        e->is_prefix = (token_count > 0 || flags) ? 1 : 0;
        e->trailing = flags & 1;
      }
      if (static_len > r->max_path_key) r->max_path_key = static_len;
    }

    uint32_t addr_first = addr_total;
    for (uint32_t a = 0; a < addr_count; a++) {
      uint32_t bits = rd_u8(rd);
      uint32_t at = rd_skip(rd, 16);
      if (rd->bad || bits > 128) return -1;
      if (r) {
        memcpy(r->addrs[addr_total].bytes, r->bytes + at, 16);
        r->addrs[addr_total].bits = bits;
      }
      addr_total++;
    }
    counts->hosts += host_count;
    if (counts->hosts > MAX_HOSTS) return -1;
    if (host_count > counts->max_hosts_per_route) counts->max_hosts_per_route = host_count;
    if (r) {
      route_t *route = &r->routes[index];
      route->priority = priority;
      route->method_mask = method_mask;
      route->addr_first = addr_first;
      route->addr_count = addr_count;
    }
  }
  counts->addrs = addr_total;
  return rd->pos == rd->len ? 0 : -1;
}

/* ---- build ---- */

static const uint8_t *sort_bytes; /* qsort has no context argument; builds are single-threaded */

/* Buckets (group, kind, key) contiguous, prefix keys longest first; inside a bucket the match order. */
static int compare_entries(const void *pa, const void *pb) {
  const uri_entry_t *a = pa, *b = pb;
  if (a->group != b->group) return a->group < b->group ? -1 : 1;
  if (a->is_prefix != b->is_prefix) return a->is_prefix < b->is_prefix ? -1 : 1;
  if (a->key_len != b->key_len) return a->key_len > b->key_len ? -1 : 1;
  int c = memcmp(sort_bytes + a->key_off, sort_bytes + b->key_off, a->key_len);
  if (c != 0) return c;
  if (a->priority != b->priority) return a->priority > b->priority ? -1 : 1;
  if (a->uri_len != b->uri_len) return a->uri_len > b->uri_len ? -1 : 1;
  if (a->route != b->route) return a->route < b->route ? -1 : 1;
  return 0;
}

static int compare_desc(const void *pa, const void *pb) {
  uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
  return a == b ? 0 : (a > b ? -1 : 1);
}

static void router_destroy(router_t *r) {
  if (!r) return;
  free(r->bytes);
  free(r->routes);
  free(r->addrs);
  free(r->entries);
  free(r->groups);
  free(r->lengths);
  free(r->suffix_lengths);
  free(r->slots);
  free(r);
}

static router_t *router_create(const uint8_t *spec, uint32_t len) {
  spec_counts_t counts = {0};
  reader_t rd = {spec, 0, len, 0};
  if (walk_spec(&rd, &counts, NULL, NULL) != 0) return NULL;

  router_t *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  uint32_t entry_count = (uint32_t)counts.entries;
  uint64_t keys = (uint64_t)counts.hosts + entry_count + 1;
  uint32_t capacity = 16;
  while (capacity < keys * 2) capacity <<= 1;
  uint32_t *group_scratch = malloc(sizeof(uint32_t) * (counts.max_hosts_per_route + 1));
  r->bytes = malloc(len ? len : 1);
  r->routes = malloc(sizeof(route_t) * (counts.routes + 1));
  r->addrs = malloc(sizeof(addr_range_t) * (counts.addrs + 1));
  r->entries = malloc(sizeof(uri_entry_t) * (entry_count + 1));
  r->groups = malloc(sizeof(group_t) * (counts.hosts + 1));
  r->lengths = malloc(sizeof(uint32_t) * (entry_count + 1));
  r->suffix_lengths = malloc(sizeof(uint32_t) * (counts.hosts + 1));
  r->slots = malloc(sizeof(slot_t) * capacity);
  if (!group_scratch || !r->bytes || !r->routes || !r->addrs || !r->entries || !r->groups || !r->lengths ||
      !r->suffix_lengths || !r->slots) {
    free(group_scratch);
    router_destroy(r);
    return NULL;
  }
  memcpy(r->bytes, spec, len);
  for (uint32_t i = 0; i < capacity; i++) r->slots[i].tag = EMPTY_TAG;
  r->slot_mask = capacity - 1;
  r->group_count = 1; /* group 0: routes without hosts */
  r->groups[0].lengths_first = 0;
  r->groups[0].lengths_count = 0;

  spec_counts_t filled = {0};
  reader_t fill = {r->bytes, 0, len, 0};
  walk_spec(&fill, &filled, r, group_scratch);
  free(group_scratch);

  sort_bytes = r->bytes;
  qsort(r->entries, r->entry_count, sizeof(uri_entry_t), compare_entries);

  uint32_t length_count = 0;
  for (uint32_t i = 0; i < r->entry_count;) {
    const uri_entry_t *head = &r->entries[i];
    uint32_t j = i + 1;
    while (j < r->entry_count && r->entries[j].group == head->group && r->entries[j].is_prefix == head->is_prefix &&
           r->entries[j].key_len == head->key_len &&
           memcmp(r->bytes + r->entries[j].key_off, r->bytes + head->key_off, head->key_len) == 0)
      j++;
    uint32_t kind = head->is_prefix ? KEY_PATH_PREFIX : KEY_PATH_EXACT;
    slot_t *s = insert(r, head->group << 2 | kind, head->key_off, head->key_len,
                       hash_bytes(r->bytes + head->key_off, head->key_len));
    s->first = i;
    s->count = j - i;
    if (head->is_prefix) {
      group_t *g = &r->groups[head->group];
      if (g->lengths_count == 0) g->lengths_first = length_count;
      if (g->lengths_count == 0 || r->lengths[length_count - 1] != head->key_len) {
        r->lengths[length_count++] = head->key_len;
        g->lengths_count++;
      }
    }
    i = j;
  }

  qsort(r->suffix_lengths, r->suffix_length_count, sizeof(uint32_t), compare_desc);
  uint32_t distinct = 0;
  for (uint32_t i = 0; i < r->suffix_length_count; i++)
    if (distinct == 0 || r->suffix_lengths[distinct - 1] != r->suffix_lengths[i])
      r->suffix_lengths[distinct++] = r->suffix_lengths[i];
  r->suffix_length_count = distinct;
  return r;
}

/* ---- handles ---- */

static router_t **router_table;
static uint32_t router_table_size;

PAL_EXPORT int32_t pal_router_build(const uint8_t *spec, uint32_t len) {
  uint32_t handle = 0;
  while (handle < router_table_size && router_table[handle]) handle++;
  if (handle == router_table_size) {
    uint32_t size = router_table_size ? router_table_size * 2 : 8;
    router_t **grown = realloc(router_table, sizeof(router_t *) * size);
    if (!grown) return PAL_E_ROUTER;
    for (uint32_t i = router_table_size; i < size; i++) grown[i] = NULL;
    router_table = grown;
    router_table_size = size;
  }
  router_t *r = router_create(spec, len);
  if (!r) return PAL_E_ROUTER;
  router_table[handle] = r;
  return (int32_t)handle;
}

PAL_EXPORT void pal_router_free(int32_t router) {
  if (router < 0 || (uint32_t)router >= router_table_size) return;
  router_destroy(router_table[router]);
  router_table[router] = NULL;
}

/* ---- match ---- */

typedef struct {
  const router_t *r;
  const uint8_t *path;
  uint32_t path_len;
  uint32_t method;
  int has_ip;
  uint8_t ip[16];
  int32_t *routes; /* out + OUT_ROUTES */
  int32_t count;
  uint32_t hashed; /* prefix_hash[0..hashed] are valid */
  uint32_t prefix_hash[PREFIX_HASH_CACHE + 1];
} match_t;

/* FNV state after the first len path bytes; extends the cached run on demand. */
static uint32_t path_prefix_hash(match_t *m, uint32_t len) {
  if (len > PREFIX_HASH_CACHE) return hash_bytes(m->path, len);
  while (m->hashed < len) {
    m->prefix_hash[m->hashed + 1] = fnv_step(m->prefix_hash[m->hashed], m->path[m->hashed]);
    m->hashed++;
  }
  return m->prefix_hash[len];
}

static int address_in_range(const uint8_t *ip, const addr_range_t *range) {
  uint32_t whole = range->bits / 8, rest = range->bits % 8;
  if (memcmp(ip, range->bytes, whole) != 0) return 0;
  if (rest == 0) return 1;
  uint8_t mask = (uint8_t)(0xff << (8 - rest));
  return (ip[whole] & mask) == (range->bytes[whole] & mask);
}

static int route_accepts(const match_t *m, const route_t *route) {
  if (route->method_mask != 0 &&
      (m->method == PAL_M_OTHER || m->method > 31 || !(route->method_mask & (1u << m->method))))
    return 0;
  if (route->addr_count == 0) return 1;
  if (!m->has_ip) return 0;
  for (uint32_t i = 0; i < route->addr_count; i++)
    if (address_in_range(m->ip, &m->r->addrs[route->addr_first + i])) return 1;
  return 0;
}

static void consider(match_t *m, uint32_t route) {
  for (int32_t i = 0; i < m->count; i++)
    if (m->routes[i] == (int32_t)route) return;
  if (route_accepts(m, &m->r->routes[route])) m->routes[m->count++] = (int32_t)route;
}

/* Do the entry's tokens match the path from `pos` (right after its static prefix)? */
static int tokens_match(const router_t *r, const uri_entry_t *e, const uint8_t *path, uint32_t path_len,
                        uint32_t pos) {
  const uint8_t *t = r->bytes + e->tokens_off;
  for (uint32_t k = 0; k < e->token_count; k++) {
    uint32_t type = *t++;
    if (type == TOKEN_LITERAL) {
      uint32_t len = (uint32_t)t[0] | ((uint32_t)t[1] << 8);
      t += 2;
      if (path_len - pos < len || memcmp(path + pos, t, len) != 0) return 0;
      pos += len;
      t += len;
    } else if (type == TOKEN_PARAM) {
      uint32_t start = pos;
      while (pos < path_len && path[pos] != '/') pos++;
      if (pos == start) return 0;
    } else {
      return 1; /* catch-all: the rest, even empty */
    }
  }
  return e->trailing || pos == path_len;
}

static void match_group(match_t *m, uint32_t group) {
  const router_t *r = m->r;
  if (m->path_len <= r->max_path_key) {
    const slot_t *s = lookup(r, group << 2 | KEY_PATH_EXACT, m->path, m->path_len,
                             path_prefix_hash(m, m->path_len), 0);
    if (s)
      for (uint32_t i = 0; i < s->count && m->count < PAL_MAX_CANDIDATES; i++)
        consider(m, r->entries[s->first + i].route);
  }
  const group_t *g = &r->groups[group];
  for (uint32_t k = 0; k < g->lengths_count && m->count < PAL_MAX_CANDIDATES; k++) {
    uint32_t len = r->lengths[g->lengths_first + k];
    if (len > m->path_len) continue;
    const slot_t *s = lookup(r, group << 2 | KEY_PATH_PREFIX, m->path, len, path_prefix_hash(m, len), 0);
    if (!s) continue;
    for (uint32_t i = 0; i < s->count && m->count < PAL_MAX_CANDIDATES; i++) {
      const uri_entry_t *e = &r->entries[s->first + i];
      if (tokens_match(r, e, m->path, m->path_len, len)) consider(m, e->route);
    }
  }
}

static int32_t match_request(int32_t router, uint32_t method, const uint8_t *path, uint32_t path_len,
                             const uint8_t *host, uint32_t host_len, const uint8_t *ip, uint32_t ip_len,
                             int32_t *out) {
  if (router < 0 || (uint32_t)router >= router_table_size || !router_table[router]) {
    out[OUT_ROUTE_COUNT] = 0;
    return PAL_E_ROUTER;
  }
  match_t m;
  m.r = router_table[router];
  m.path = path;
  m.path_len = path_len;
  m.method = method;
  m.routes = out + OUT_ROUTES;
  m.count = 0;
  m.hashed = 0;
  m.prefix_hash[0] = FNV_OFFSET;
  m.has_ip = 1;
  if (ip_len == 16) {
    memcpy(m.ip, ip, 16);
  } else if (ip_len == 4) {
    memset(m.ip, 0, 10);
    m.ip[10] = m.ip[11] = 0xff;
    memcpy(m.ip + 12, ip, 4);
  } else {
    m.has_ip = 0;
  }

  const router_t *r = m.r;
  if (host_len > 0) {
    const slot_t *s = lookup(r, KEY_HOST_EXACT, host, host_len, hash_bytes_folded(host, host_len), 1);
    if (s) match_group(&m, s->first);
    for (uint32_t k = 0; k < r->suffix_length_count && m.count < PAL_MAX_CANDIDATES; k++) {
      uint32_t len = r->suffix_lengths[k];
      if (len >= host_len) continue;
      const uint8_t *suffix = host + host_len - len;
      s = lookup(r, KEY_HOST_SUFFIX, suffix, len, hash_bytes_folded(suffix, len), 1);
      if (s) match_group(&m, s->first);
    }
  }
  if (m.count < PAL_MAX_CANDIDATES) match_group(&m, 0);
  out[OUT_ROUTE_COUNT] = m.count;
  return 0;
}

int32_t pal_route_match(int32_t router, const uint8_t *buf, const uint8_t *ip, uint32_t ip_len, int32_t *out) {
  uint32_t host_start = (uint32_t)out[OUT_HOST_START], host_end = (uint32_t)out[OUT_HOST_END];
  const uint8_t *path;
  uint32_t path_len;
  if (out[OUT_URI_LEN] >= 0) {
    /* Routes match $uri, the normalised path the parser left in the URI area. */
    path = (const uint8_t *)(out + OUT_URI);
    path_len = (uint32_t)out[OUT_URI_LEN];
  } else {
    uint32_t path_start = (uint32_t)out[OUT_TARGET_START], path_end = (uint32_t)out[OUT_PATH_END];
    path = buf + path_start;
    path_len = path_end > path_start ? path_end - path_start : 0;
  }
  return match_request(router, (uint32_t)out[OUT_METHOD], path, path_len, buf + host_start,
                       host_end > host_start ? host_end - host_start : 0, ip, ip_len, out);
}

/*
 * Match without a request head: for tests and the benchmark only (not in
 * palisade.h; bound directly with koffi). Writes OUT_ROUTE_COUNT/OUT_ROUTES.
 */
PAL_EXPORT int32_t pal_router_match_path(int32_t router, int32_t method, const uint8_t *path, uint32_t path_len,
                                         const uint8_t *host, uint32_t host_len, const uint8_t *ip, uint32_t ip_len,
                                         int32_t *out) {
  return match_request(router, (uint32_t)method, path, path_len, host, host_len, ip, ip_len, out);
}
