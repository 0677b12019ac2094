/*
 * Shared dictionary: a key/value store in a memory-mapped file that every
 * process of the gateway maps, like nginx's lua_shared_dict. Mirrored in
 * src/native/js/shdict.ts (per process only).
 *
 * File layout (every position is an offset, never a pointer, because each
 * process maps the file at a different address):
 *
 *   [0, HEADER_SIZE)          dict_header_t: magic, sizes, the robust mutex,
 *                             the LRU list ends, buddy free lists, statistics
 *   [buckets, +4*count)       hash index: u32 arena offset of a chain head
 *   [arena, +arena_size)      entries in buddy blocks of 2^6 .. 2^20 bytes
 *
 * An entry is one block: entry_t, then the key bytes, then the value bytes
 * (a number is stored as 8 bytes of a double). Entries are chained per hash
 * bucket and linked in one LRU list (head = most recently used). When a block
 * of the needed size is not free, entries are evicted from the LRU tail until
 * it is (the buddy allocator merges freed neighbours, so evicting everything
 * always yields the largest block). Expired entries are removed when they are
 * met (lookup, eviction, pal_shdict_flush_expired).
 *
 * Concurrency: every operation holds a process-shared robust mutex. While the
 * structure is being changed, the header's `dirty` word is 1. If a process
 * dies holding the mutex, the next locker gets EOWNERDEAD: when `dirty` is 0
 * the data is intact and it only marks the mutex consistent; when `dirty` is 1
 * the dictionary may be half-updated, so it is emptied (stats: resets).
 *
 * Time: CLOCK_MONOTONIC milliseconds, the same clock in every process of one
 * boot. The header records the boot id; a file left from an earlier boot is
 * emptied when opened.
 *
 * Opening: the opener holds flock(LOCK_EX) on the file while it creates,
 * initialises or validates the header, so concurrent openers never see a
 * half-written header.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "palisade.h"

#define DICT_MAGIC 0x31445350u /* "PSD1" */
#define DICT_VERSION 1u
#define HEADER_SIZE 4096u
#define MIN_ORDER 6u  /* 64-byte blocks */
#define MAX_ORDER 20u /* 1 MiB blocks: the largest entry */
#define NIL 0xffffffffu
#define MAX_DICTS 256
#define MAX_PATH 4096u
#define BOOT_ID_SIZE 40u

enum { BLOCK_FREE = 0x46, BLOCK_USED = 0x55 };

typedef struct {
  uint32_t magic;
  uint32_t version;
  uint32_t header_struct_size; /* sizeof(dict_header_t): catches a different build */
  uint32_t mutex_size;
  uint64_t map_size;
  uint64_t arena_offset;
  uint64_t arena_size;
  uint32_t bucket_offset;
  uint32_t bucket_count; /* a power of two */
  uint32_t max_order;    /* largest block order present in the arena */
  uint32_t reserved;
  char boot_id[BOOT_ID_SIZE];
  pthread_mutex_t lock;
  /* Everything below is guarded by `lock`. */
  uint32_t dirty;
  uint32_t lru_head;
  uint32_t lru_tail;
  uint32_t free_heads[MAX_ORDER + 1];
  uint64_t used_bytes;
  uint64_t items;
  uint64_t evictions;
  uint64_t expired;
  uint64_t lock_recoveries;
  uint64_t resets;
} dict_header_t;

_Static_assert(sizeof(dict_header_t) <= HEADER_SIZE, "header must fit its page");

/* A block in use. The first two bytes are shared with free_block_t. */
typedef struct {
  uint8_t state;
  uint8_t order;
  uint8_t type; /* PAL_SHDICT_T_* */
  uint8_t reserved;
  uint32_t hash;
  uint32_t hash_next;
  uint32_t lru_prev;
  uint32_t lru_next;
  uint32_t flags;
  uint32_t key_len;
  uint32_t value_len;
  int64_t expires_ms; /* 0 = never */
} entry_t;

typedef struct {
  uint8_t state;
  uint8_t order;
  uint16_t reserved;
  uint32_t next;
  uint32_t prev;
} free_block_t;

_Static_assert(sizeof(entry_t) == 40, "entry header size is part of the capacity math in js/shdict.ts");
_Static_assert(sizeof(free_block_t) <= (1u << MIN_ORDER), "free block header fits the smallest block");

typedef struct {
  dict_header_t *header;
  uint8_t *arena;
  uint32_t *buckets;
  size_t map_size;
} dict_t;

static dict_t dicts[MAX_DICTS];
static pthread_mutex_t dicts_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- small helpers ---- */

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void read_boot_id(char *out) {
  memset(out, 0, BOOT_ID_SIZE);
  int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t n = read(fd, out, BOOT_ID_SIZE - 1);
  if (n < 0) out[0] = 0;
  close(fd);
}

static uint32_t hash_key(const uint8_t *key, uint32_t len) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (uint32_t i = 0; i < len; i++) {
    h ^= key[i];
    h *= 16777619u;
  }
  return h;
}

static dict_t *dict_of(int32_t handle) {
  if (handle < 0 || handle >= MAX_DICTS || dicts[handle].header == NULL) return NULL;
  return &dicts[handle];
}

static entry_t *entry_at(dict_t *d, uint32_t off) { return (entry_t *)(d->arena + off); }
static free_block_t *free_at(dict_t *d, uint32_t off) { return (free_block_t *)(d->arena + off); }
static uint8_t *entry_key(entry_t *e) { return (uint8_t *)(e + 1); }
static uint8_t *entry_value(entry_t *e) { return (uint8_t *)(e + 1) + e->key_len; }

static int is_expired(const entry_t *e, int64_t now) { return e->expires_ms != 0 && e->expires_ms <= now; }

/* Smallest block order holding `bytes`, or MAX_ORDER + 1 when none does. */
static uint32_t order_for(uint64_t bytes) {
  uint32_t order = MIN_ORDER;
  while (order <= MAX_ORDER && ((uint64_t)1 << order) < bytes) order++;
  return order;
}

/* A TTL in ms (0 = never) as an absolute expiry, or -1 when invalid. */
static int64_t expiry_for(double ttl_ms, int64_t now) {
  if (!(ttl_ms >= 0) || ttl_ms > 1e15) return -1; /* also rejects NaN */
  if (ttl_ms == 0) return 0;
  return now + (int64_t)ceil(ttl_ms);
}

/* The inverse, for out[TTL]: ms left until an absolute expiry (0 = never expires). */
static double remaining_ms(int64_t expires_ms, int64_t now) {
  return expires_ms == 0 ? 0 : (double)(expires_ms - now);
}

/*
 * `dirty` marks a structural change in progress. A compiler barrier is enough
 * to order it against the change: another process only looks at it after the
 * kernel has finished the dead owner's exit, which orders all of its stores.
 */
static void begin_change(dict_header_t *h) {
  __atomic_store_n(&h->dirty, 1u, __ATOMIC_RELAXED);
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
}

static void end_change(dict_header_t *h) {
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  __atomic_store_n(&h->dirty, 0u, __ATOMIC_RELAXED);
}

/* ---- buddy allocator over the arena ---- */

static void free_list_push(dict_t *d, uint32_t off, uint32_t order) {
  dict_header_t *h = d->header;
  free_block_t *b = free_at(d, off);
  b->state = BLOCK_FREE;
  b->order = (uint8_t)order;
  b->reserved = 0;
  b->prev = NIL;
  b->next = h->free_heads[order];
  if (b->next != NIL) free_at(d, b->next)->prev = off;
  h->free_heads[order] = off;
}

static void free_list_remove(dict_t *d, uint32_t off) {
  free_block_t *b = free_at(d, off);
  if (b->prev != NIL) {
    free_at(d, b->prev)->next = b->next;
  } else {
    d->header->free_heads[b->order] = b->next;
  }
  if (b->next != NIL) free_at(d, b->next)->prev = b->prev;
}

/* A block of 2^order bytes, or NIL when none is free. */
static uint32_t block_alloc(dict_t *d, uint32_t order) {
  dict_header_t *h = d->header;
  uint32_t found = order;
  while (found <= h->max_order && h->free_heads[found] == NIL) found++;
  if (found > h->max_order) return NIL;
  uint32_t off = h->free_heads[found];
  free_list_remove(d, off);
  while (found > order) {
    found--;
    free_list_push(d, off + (1u << found), found);
  }
  entry_t *e = entry_at(d, off);
  e->state = BLOCK_USED;
  e->order = (uint8_t)order;
  h->used_bytes += 1u << order;
  return off;
}

static void block_free(dict_t *d, uint32_t off) {
  dict_header_t *h = d->header;
  uint32_t order = entry_at(d, off)->order;
  h->used_bytes -= 1u << order;
  while (order < h->max_order) {
    uint32_t size = 1u << order;
    uint32_t buddy = off ^ size;
    if ((uint64_t)buddy + size > h->arena_size) break; /* the arena's last blocks have no buddy */
    free_block_t *b = free_at(d, buddy);
    if (b->state != BLOCK_FREE || b->order != order) break;
    free_list_remove(d, buddy);
    if (buddy < off) off = buddy;
    order++;
  }
  free_list_push(d, off, order);
}

/* ---- index and LRU ---- */

static void lru_unlink(dict_t *d, uint32_t off) {
  dict_header_t *h = d->header;
  entry_t *e = entry_at(d, off);
  if (e->lru_prev != NIL) {
    entry_at(d, e->lru_prev)->lru_next = e->lru_next;
  } else {
    h->lru_head = e->lru_next;
  }
  if (e->lru_next != NIL) {
    entry_at(d, e->lru_next)->lru_prev = e->lru_prev;
  } else {
    h->lru_tail = e->lru_prev;
  }
}

static void lru_push_head(dict_t *d, uint32_t off) {
  dict_header_t *h = d->header;
  entry_t *e = entry_at(d, off);
  e->lru_prev = NIL;
  e->lru_next = h->lru_head;
  if (h->lru_head != NIL) entry_at(d, h->lru_head)->lru_prev = off;
  h->lru_head = off;
  if (h->lru_tail == NIL) h->lru_tail = off;
}

static void lru_touch(dict_t *d, uint32_t off) {
  if (d->header->lru_head == off) return;
  lru_unlink(d, off);
  lru_push_head(d, off);
}

static uint32_t find_entry(dict_t *d, const uint8_t *key, uint32_t key_len, uint32_t hash) {
  uint32_t off = d->buckets[hash & (d->header->bucket_count - 1)];
  while (off != NIL) {
    entry_t *e = entry_at(d, off);
    if (e->hash == hash && e->key_len == key_len && memcmp(entry_key(e), key, key_len) == 0) return off;
    off = e->hash_next;
  }
  return NIL;
}

/* Unlink an entry from its chain and the LRU list and free its block. */
static void remove_entry(dict_t *d, uint32_t off) {
  entry_t *e = entry_at(d, off);
  uint32_t *link = &d->buckets[e->hash & (d->header->bucket_count - 1)];
  while (*link != off) link = &entry_at(d, *link)->hash_next;
  *link = e->hash_next;
  lru_unlink(d, off);
  block_free(d, off);
  d->header->items--;
}

/*
 * Allocate a block for an entry of `bytes`, evicting from the LRU tail while
 * none is free. *forcible is set when an unexpired entry had to go.
 */
static uint32_t alloc_entry(dict_t *d, uint32_t order, int64_t now, int *forcible) {
  dict_header_t *h = d->header;
  for (;;) {
    uint32_t off = block_alloc(d, order);
    if (off != NIL) return off;
    uint32_t victim = h->lru_tail;
    if (victim == NIL) return NIL; /* cannot happen when order <= max_order */
    if (is_expired(entry_at(d, victim), now)) {
      h->expired++;
    } else {
      h->evictions++;
      *forcible = 1;
    }
    remove_entry(d, victim);
  }
}

/* Write a new entry (the key must not be present) and link it. Returns its offset or NIL. */
static uint32_t insert_entry(dict_t *d, const uint8_t *key, uint32_t key_len, uint32_t hash, uint8_t type,
                             const uint8_t *value, uint32_t value_len, int64_t expires_ms, uint32_t flags, int64_t now,
                             int *forcible) {
  uint32_t order = order_for((uint64_t)sizeof(entry_t) + key_len + value_len);
  uint32_t off = alloc_entry(d, order, now, forcible);
  if (off == NIL) return NIL;
  entry_t *e = entry_at(d, off);
  e->type = type;
  e->reserved = 0;
  e->hash = hash;
  e->flags = flags;
  e->key_len = key_len;
  e->value_len = value_len;
  e->expires_ms = expires_ms;
  memcpy(entry_key(e), key, key_len);
  memcpy(entry_value(e), value, value_len);
  uint32_t *bucket = &d->buckets[hash & (d->header->bucket_count - 1)];
  e->hash_next = *bucket;
  *bucket = off;
  lru_push_head(d, off);
  d->header->items++;
  return off;
}

/* ---- initialisation and locking ---- */

/* Empty the dictionary: buckets, LRU, free lists. Statistics are kept. */
static void reset_contents(dict_t *d) {
  dict_header_t *h = d->header;
  for (uint32_t i = 0; i < h->bucket_count; i++) d->buckets[i] = NIL;
  for (uint32_t o = 0; o <= MAX_ORDER; o++) h->free_heads[o] = NIL;
  h->lru_head = NIL;
  h->lru_tail = NIL;
  h->used_bytes = 0;
  h->items = 0;
  /* The arena as consecutive blocks, largest first, so each is aligned to its size. */
  uint64_t off = 0;
  for (uint32_t o = h->max_order + 1; o-- > MIN_ORDER;) {
    while (off + (1u << o) <= h->arena_size) {
      free_list_push(d, (uint32_t)off, o);
      off += 1u << o;
      if (o < h->max_order) break; /* below the largest size, one block of each is enough */
    }
  }
}

static void attach(dict_t *d, void *base, size_t map_size) {
  d->header = (dict_header_t *)base;
  d->map_size = map_size;
  d->buckets = (uint32_t *)((uint8_t *)base + d->header->bucket_offset);
  d->arena = (uint8_t *)base + d->header->arena_offset;
}

/* Lay out and initialise a new file of map_size bytes (mapped at base). */
static int init_dict(dict_t *d, void *base, size_t map_size) {
  dict_header_t *h = (dict_header_t *)base;
  memset(h, 0, sizeof(*h));
  uint32_t bucket_count = 64;
  while (bucket_count < (1u << 24) && (uint64_t)bucket_count * 2 <= map_size / 256) bucket_count *= 2;
  uint64_t arena_offset = HEADER_SIZE + (((uint64_t)bucket_count * 4 + 4095) & ~(uint64_t)4095);
  if (arena_offset + (1u << MIN_ORDER) > map_size) return PAL_SHDICT_E_SIZE;
  h->version = DICT_VERSION;
  h->header_struct_size = sizeof(dict_header_t);
  h->mutex_size = sizeof(pthread_mutex_t);
  h->map_size = map_size;
  h->bucket_offset = HEADER_SIZE;
  h->bucket_count = bucket_count;
  h->arena_offset = arena_offset;
  h->arena_size = (map_size - arena_offset) & ~(uint64_t)((1u << MIN_ORDER) - 1);
  h->max_order = MIN_ORDER;
  while (h->max_order < MAX_ORDER && ((uint64_t)1 << (h->max_order + 1)) <= h->arena_size) h->max_order++;
  read_boot_id(h->boot_id);

  pthread_mutexattr_t attr;
  if (pthread_mutexattr_init(&attr) != 0) return PAL_SHDICT_E_LOCK;
  int rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  if (rc == 0) rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  if (rc == 0) rc = pthread_mutex_init(&h->lock, &attr);
  pthread_mutexattr_destroy(&attr);
  if (rc != 0) return PAL_SHDICT_E_LOCK;

  attach(d, base, map_size);
  reset_contents(d);
  /* The magic last: a file without it is treated as never initialised. */
  __atomic_store_n(&h->magic, DICT_MAGIC, __ATOMIC_RELEASE);
  return 0;
}

static int lock_dict(dict_t *d) {
  dict_header_t *h = d->header;
  int rc = pthread_mutex_lock(&h->lock);
  if (rc == 0) return 0;
  if (rc != EOWNERDEAD) return PAL_SHDICT_E_LOCK;
  /* The previous owner died holding the lock. */
  h->lock_recoveries++;
  if (__atomic_load_n(&h->dirty, __ATOMIC_RELAXED) != 0) {
    reset_contents(d); /* dirty stays 1 until this is done, so dying here is recovered the same way */
    h->resets++;
    end_change(h);
  }
  pthread_mutex_consistent(&h->lock);
  return 0;
}

static void unlock_dict(dict_t *d) { pthread_mutex_unlock(&d->header->lock); }

/* ---- opening ---- */

static int32_t map_file(int fd, size_t size, void **base) {
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return PAL_SHDICT_E_OPEN;
  *base = p;
  return 0;
}

/* Called with the file locked (flock). Maps, creates or validates; fills *d. */
static int32_t open_locked(int fd, uint64_t capacity, dict_t *d) {
  struct stat st;
  if (fstat(fd, &st) != 0) return PAL_SHDICT_E_OPEN;
  uint64_t file_size = (uint64_t)st.st_size;
  void *base = NULL;
  int32_t rc;

  if (file_size >= HEADER_SIZE) {
    if (file_size > PAL_SHDICT_MAX_CAPACITY) return PAL_SHDICT_E_BAD_FILE;
    rc = map_file(fd, (size_t)file_size, &base);
    if (rc != 0) return rc;
    dict_header_t *h = (dict_header_t *)base;
    uint32_t magic = __atomic_load_n(&h->magic, __ATOMIC_ACQUIRE);
    if (magic == DICT_MAGIC) {
      if (h->version != DICT_VERSION || h->header_struct_size != sizeof(dict_header_t) ||
          h->mutex_size != sizeof(pthread_mutex_t) || h->map_size != file_size ||
          h->arena_offset + h->arena_size > file_size || h->bucket_offset != HEADER_SIZE ||
          h->max_order > MAX_ORDER || h->max_order < MIN_ORDER) {
        munmap(base, (size_t)file_size);
        return PAL_SHDICT_E_BAD_FILE;
      }
      if (capacity != 0 && capacity != file_size) {
        munmap(base, (size_t)file_size);
        return PAL_SHDICT_E_SIZE;
      }
      char boot_id[BOOT_ID_SIZE];
      read_boot_id(boot_id);
      if (memcmp(boot_id, h->boot_id, BOOT_ID_SIZE) != 0) {
        /* Left from an earlier boot: its expiry times and mutex mean nothing now. */
        rc = init_dict(d, base, (size_t)file_size);
        if (rc != 0) munmap(base, (size_t)file_size);
        return rc;
      }
      attach(d, base, (size_t)file_size);
      return 0;
    }
    munmap(base, (size_t)file_size);
    if (magic != 0) return PAL_SHDICT_E_BAD_FILE;
    /* No magic: a creator died before finishing; initialise it again below. */
  } else if (file_size != 0) {
    return PAL_SHDICT_E_BAD_FILE;
  }

  if (capacity == 0) return PAL_SHDICT_E_NOT_FOUND;
  if (ftruncate(fd, (off_t)capacity) != 0) return PAL_SHDICT_E_OPEN;
  /* Reserve the pages now: a tmpfs that fills up later would kill us with SIGBUS on first touch. */
  rc = posix_fallocate(fd, 0, (off_t)capacity);
  if (rc != 0 && rc != EOPNOTSUPP && rc != EINVAL) return PAL_SHDICT_E_OPEN;
  rc = map_file(fd, (size_t)capacity, &base);
  if (rc != 0) return rc;
  rc = init_dict(d, base, (size_t)capacity);
  if (rc != 0) munmap(base, (size_t)capacity);
  return rc;
}

PAL_EXPORT int32_t pal_shdict_open(const uint8_t *path, uint32_t path_len, double capacity, int32_t flags) {
  if (path_len == 0 || path_len >= MAX_PATH || memchr(path, 0, path_len) != NULL) return PAL_SHDICT_E_ARG;
  if (!(capacity == 0 || (capacity >= PAL_SHDICT_MIN_CAPACITY && capacity <= PAL_SHDICT_MAX_CAPACITY)) ||
      capacity != floor(capacity)) {
    return PAL_SHDICT_E_SIZE;
  }
  char name[MAX_PATH];
  memcpy(name, path, path_len);
  name[path_len] = 0;

  pthread_mutex_lock(&dicts_lock);
  int32_t handle = -1;
  for (int32_t i = 0; i < MAX_DICTS; i++) {
    if (dicts[i].header == NULL) {
      handle = i;
      break;
    }
  }
  int32_t rc = 0;
  if (handle < 0) rc = PAL_SHDICT_E_TOO_MANY;
  if (rc == 0 && (flags & PAL_SHDICT_OPEN_FRESH) != 0 && unlink(name) != 0 && errno != ENOENT) rc = PAL_SHDICT_E_OPEN;
  if (rc == 0) {
    int fd = open(name, O_RDWR | O_CLOEXEC | (capacity != 0 ? O_CREAT : 0), 0600);
    if (fd < 0) {
      rc = errno == ENOENT && capacity == 0 ? PAL_SHDICT_E_NOT_FOUND : PAL_SHDICT_E_OPEN;
    } else {
      if (flock(fd, LOCK_EX) != 0) {
        rc = PAL_SHDICT_E_OPEN;
      } else {
        dict_t d = {0};
        rc = open_locked(fd, (uint64_t)capacity, &d);
        if (rc == 0) dicts[handle] = d;
        flock(fd, LOCK_UN);
      }
      close(fd); /* the mapping keeps the file */
    }
  }
  pthread_mutex_unlock(&dicts_lock);
  return rc == 0 ? handle : rc;
}

PAL_EXPORT int32_t pal_shdict_close(int32_t dict) {
  pthread_mutex_lock(&dicts_lock);
  dict_t *d = dict_of(dict);
  int32_t rc = PAL_SHDICT_E_HANDLE;
  if (d != NULL) {
    munmap(d->header, d->map_size);
    memset(d, 0, sizeof(*d));
    rc = 0;
  }
  pthread_mutex_unlock(&dicts_lock);
  return rc;
}

/* ---- operations ---- */

static int32_t check_key(const uint8_t *key, uint32_t key_len) {
  (void)key;
  return key_len == 0 || key_len > PAL_SHDICT_MAX_KEY ? PAL_SHDICT_E_KEY : 0;
}

/* Lock, then find a live entry (an expired one is removed on the way). Sets *off or NIL. */
static int32_t lock_and_find(dict_t *d, const uint8_t *key, uint32_t key_len, uint32_t hash, int64_t now,
                             uint32_t *off) {
  int32_t rc = lock_dict(d);
  if (rc != 0) return rc;
  *off = find_entry(d, key, key_len, hash);
  if (*off != NIL && is_expired(entry_at(d, *off), now)) {
    begin_change(d->header);
    remove_entry(d, *off);
    d->header->expired++;
    end_change(d->header);
    *off = NIL;
  }
  return 0;
}

static void write_info(entry_t *e, int64_t now, double *out) {
  out[PAL_SHDICT_OUT_TYPE] = e->type;
  out[PAL_SHDICT_OUT_LENGTH] = e->value_len;
  out[PAL_SHDICT_OUT_FLAGS] = e->flags;
  out[PAL_SHDICT_OUT_TTL] = remaining_ms(e->expires_ms, now);
  if (e->type == PAL_SHDICT_T_NUMBER) {
    double number;
    memcpy(&number, entry_value(e), sizeof(number));
    out[PAL_SHDICT_OUT_NUMBER] = number;
  } else {
    out[PAL_SHDICT_OUT_NUMBER] = 0;
  }
}

PAL_EXPORT int32_t pal_shdict_get(int32_t dict, const uint8_t *key, uint32_t key_len, uint8_t *value,
                                  uint32_t value_cap, double *out) {
  dict_t *d = dict_of(dict);
  if (d == NULL) return PAL_SHDICT_E_HANDLE;
  int32_t rc = check_key(key, key_len);
  if (rc != 0) return rc;
  uint32_t hash = hash_key(key, key_len);
  int64_t now = now_ms();
  uint32_t off;
  rc = lock_and_find(d, key, key_len, hash, now, &off);
  if (rc != 0) return rc;
  if (off == NIL) {
    rc = PAL_SHDICT_E_NOT_FOUND;
  } else {
    entry_t *e = entry_at(d, off);
    write_info(e, now, out);
    if (e->type == PAL_SHDICT_T_BYTES) {
      if (e->value_len > value_cap) {
        rc = PAL_SHDICT_E_BUFFER;
      } else {
        memcpy(value, entry_value(e), e->value_len);
      }
    }
    begin_change(d->header);
    lru_touch(d, off);
    end_change(d->header);
  }
  unlock_dict(d);
  return rc;
}

/* set / add / replace with bytes or a number (value_len 8, type NUMBER). */
static int32_t store(int32_t dict, int32_t mode, const uint8_t *key, uint32_t key_len, uint8_t type,
                     const uint8_t *value, uint32_t value_len, double ttl_ms, uint32_t flags) {
  dict_t *d = dict_of(dict);
  if (d == NULL) return PAL_SHDICT_E_HANDLE;
  int32_t rc = check_key(key, key_len);
  if (rc != 0) return rc;
  if (mode != PAL_SHDICT_SET && mode != PAL_SHDICT_ADD && mode != PAL_SHDICT_REPLACE) return PAL_SHDICT_E_ARG;
  int64_t now = now_ms();
  int64_t expires = expiry_for(ttl_ms, now);
  if (expires < 0) return PAL_SHDICT_E_ARG;
  uint32_t order = order_for((uint64_t)sizeof(entry_t) + key_len + value_len);
  uint32_t hash = hash_key(key, key_len);
  uint32_t off;
  rc = lock_and_find(d, key, key_len, hash, now, &off);
  if (rc != 0) return rc;
  if (order > d->header->max_order) {
    rc = PAL_SHDICT_E_TOO_LARGE;
  } else if (mode == PAL_SHDICT_ADD && off != NIL) {
    rc = PAL_SHDICT_E_EXISTS;
  } else if (mode == PAL_SHDICT_REPLACE && off == NIL) {
    rc = PAL_SHDICT_E_NOT_FOUND;
  } else {
    begin_change(d->header);
    entry_t *e = off == NIL ? NULL : entry_at(d, off);
    if (e != NULL && e->order == order) {
      /* Same block size: rewrite in place. */
      e->type = type;
      e->flags = flags;
      e->value_len = value_len;
      e->expires_ms = expires;
      memcpy(entry_value(e), value, value_len);
      lru_touch(d, off);
    } else {
      if (e != NULL) remove_entry(d, off);
      int forcible = 0;
      if (insert_entry(d, key, key_len, hash, type, value, value_len, expires, flags, now, &forcible) == NIL) {
        rc = PAL_SHDICT_E_TOO_LARGE;
      } else {
        rc = forcible ? PAL_SHDICT_STORED_FORCIBLY : 0;
      }
    }
    end_change(d->header);
  }
  unlock_dict(d);
  return rc;
}

PAL_EXPORT int32_t pal_shdict_store(int32_t dict, int32_t mode, const uint8_t *key, uint32_t key_len,
                                    const uint8_t *value, uint32_t value_len, double ttl_ms, uint32_t flags) {
  return store(dict, mode, key, key_len, PAL_SHDICT_T_BYTES, value, value_len, ttl_ms, flags);
}

PAL_EXPORT int32_t pal_shdict_store_number(int32_t dict, int32_t mode, const uint8_t *key, uint32_t key_len,
                                           double number, double ttl_ms, uint32_t flags) {
  uint8_t bytes[sizeof(double)];
  memcpy(bytes, &number, sizeof(number));
  return store(dict, mode, key, key_len, PAL_SHDICT_T_NUMBER, bytes, sizeof(bytes), ttl_ms, flags);
}

PAL_EXPORT int32_t pal_shdict_incr(int32_t dict, const uint8_t *key, uint32_t key_len, double delta, double init,
                                   double init_ttl_ms, int32_t has_init, double *out) {
  dict_t *d = dict_of(dict);
  if (d == NULL) return PAL_SHDICT_E_HANDLE;
  int32_t rc = check_key(key, key_len);
  if (rc != 0) return rc;
  int64_t now = now_ms();
  int64_t expires = expiry_for(init_ttl_ms, now);
  if (expires < 0) return PAL_SHDICT_E_ARG;
  uint32_t hash = hash_key(key, key_len);
  uint32_t off;
  rc = lock_and_find(d, key, key_len, hash, now, &off);
  if (rc != 0) return rc;
  if (off != NIL) {
    entry_t *e = entry_at(d, off);
    if (e->type != PAL_SHDICT_T_NUMBER) {
      rc = PAL_SHDICT_E_NOT_NUMBER;
    } else {
      double number;
      memcpy(&number, entry_value(e), sizeof(number));
      number += delta;
      begin_change(d->header);
      memcpy(entry_value(e), &number, sizeof(number));
      lru_touch(d, off);
      end_change(d->header);
      out[PAL_SHDICT_OUT_NUMBER] = number;
      out[PAL_SHDICT_OUT_TTL] = remaining_ms(e->expires_ms, now);
    }
  } else if (!has_init) {
    rc = PAL_SHDICT_E_NOT_FOUND;
  } else if (order_for((uint64_t)sizeof(entry_t) + key_len + sizeof(double)) > d->header->max_order) {
    rc = PAL_SHDICT_E_TOO_LARGE;
  } else {
    double number = init + delta;
    uint8_t bytes[sizeof(double)];
    memcpy(bytes, &number, sizeof(number));
    int forcible = 0;
    begin_change(d->header);
    if (insert_entry(d, key, key_len, hash, PAL_SHDICT_T_NUMBER, bytes, sizeof(bytes), expires, 0, now, &forcible) ==
        NIL) {
      rc = PAL_SHDICT_E_TOO_LARGE;
    } else {
      rc = forcible ? PAL_SHDICT_STORED_FORCIBLY : 0;
      out[PAL_SHDICT_OUT_NUMBER] = number;
      out[PAL_SHDICT_OUT_TTL] = remaining_ms(expires, now);
    }
    end_change(d->header);
  }
  unlock_dict(d);
  return rc;
}

PAL_EXPORT int32_t pal_shdict_delete(int32_t dict, const uint8_t *key, uint32_t key_len) {
  dict_t *d = dict_of(dict);
  if (d == NULL) return PAL_SHDICT_E_HANDLE;
  int32_t rc = check_key(key, key_len);
  if (rc != 0) return rc;
  uint32_t hash = hash_key(key, key_len);
  uint32_t off;
  rc = lock_and_find(d, key, key_len, hash, now_ms(), &off);
  if (rc != 0) return rc;
  if (off == NIL) {
    rc = PAL_SHDICT_E_NOT_FOUND;
  } else {
    begin_change(d->header);
    remove_entry(d, off);
    end_change(d->header);
  }
  unlock_dict(d);
  return rc;
}

PAL_EXPORT int32_t pal_shdict_expire(int32_t dict, const uint8_t *key, uint32_t key_len, double ttl_ms) {
  dict_t *d = dict_of(dict);
  if (d == NULL) return PAL_SHDICT_E_HANDLE;
  int32_t rc = check_key(key, key_len);
  if (rc != 0) return rc;
  int64_t now = now_ms();
  int64_t expires = expiry_for(ttl_ms, now);
  if (expires < 0) return PAL_SHDICT_E_ARG;
  uint32_t hash = hash_key(key, key_len);
  uint32_t off;
  rc = lock_and_find(d, key, key_len, hash, now, &off);
  if (rc != 0) return rc;
  if (off == NIL) {
    rc = PAL_SHDICT_E_NOT_FOUND;
  } else {
    entry_at(d, off)->expires_ms = expires; /* one aligned word: not a structural change */
  }
  unlock_dict(d);
  return rc;
}

PAL_EXPORT int32_t pal_shdict_ttl(int32_t dict, const uint8_t *key, uint32_t key_len, double *out) {
  dict_t *d = dict_of(dict);
  if (d == NULL) return PAL_SHDICT_E_HANDLE;
  int32_t rc = check_key(key, key_len);
  if (rc != 0) return rc;
  int64_t now = now_ms();
  uint32_t hash = hash_key(key, key_len);
  uint32_t off;
  rc = lock_and_find(d, key, key_len, hash, now, &off);
  if (rc != 0) return rc;
  if (off == NIL) {
    rc = PAL_SHDICT_E_NOT_FOUND;
  } else {
    entry_t *e = entry_at(d, off);
    out[PAL_SHDICT_OUT_TTL] = remaining_ms(e->expires_ms, now);
  }
  unlock_dict(d);
  return rc;
}

PAL_EXPORT int32_t pal_shdict_flush_all(int32_t dict) {
  dict_t *d = dict_of(dict);
  if (d == NULL) return PAL_SHDICT_E_HANDLE;
  int32_t rc = lock_dict(d);
  if (rc != 0) return rc;
  begin_change(d->header);
  reset_contents(d);
  end_change(d->header);
  unlock_dict(d);
  return 0;
}

PAL_EXPORT int32_t pal_shdict_flush_expired(int32_t dict, uint32_t max_count) {
  dict_t *d = dict_of(dict);
  if (d == NULL) return PAL_SHDICT_E_HANDLE;
  int32_t rc = lock_dict(d);
  if (rc != 0) return rc;
  int64_t now = now_ms();
  int32_t removed = 0;
  begin_change(d->header);
  uint32_t off = d->header->lru_tail;
  while (off != NIL && (max_count == 0 || (uint32_t)removed < max_count)) {
    uint32_t previous = entry_at(d, off)->lru_prev;
    if (is_expired(entry_at(d, off), now)) {
      remove_entry(d, off);
      d->header->expired++;
      removed++;
    }
    off = previous;
  }
  end_change(d->header);
  unlock_dict(d);
  return removed;
}

PAL_EXPORT int32_t pal_shdict_stats(int32_t dict, double *out) {
  dict_t *d = dict_of(dict);
  if (d == NULL) return PAL_SHDICT_E_HANDLE;
  int32_t rc = lock_dict(d);
  if (rc != 0) return rc;
  dict_header_t *h = d->header;
  out[PAL_SHDICT_STAT_CAPACITY] = (double)h->arena_size;
  out[PAL_SHDICT_STAT_USED] = (double)h->used_bytes;
  out[PAL_SHDICT_STAT_ITEMS] = (double)h->items;
  out[PAL_SHDICT_STAT_EVICTIONS] = (double)h->evictions;
  out[PAL_SHDICT_STAT_EXPIRED] = (double)h->expired;
  out[PAL_SHDICT_STAT_LOCK_RECOVERIES] = (double)h->lock_recoveries;
  out[PAL_SHDICT_STAT_RESETS] = (double)h->resets;
  out[PAL_SHDICT_STAT_MAX_ENTRY] = (double)(1u << h->max_order);
  unlock_dict(d);
  return 0;
}

PAL_EXPORT int32_t pal_shdict_debug_hold_lock(int32_t dict, double hold_ms, int32_t dirty, int32_t notify_fd) {
  dict_t *d = dict_of(dict);
  if (d == NULL) return PAL_SHDICT_E_HANDLE;
  int32_t rc = lock_dict(d);
  if (rc != 0) return rc;
  if (dirty) begin_change(d->header);
  if (notify_fd >= 0) {
    ssize_t written = write(notify_fd, "locked\n", 7);
    (void)written;
  }
  if (hold_ms < 0) {
    for (;;) pause();
  }
  struct timespec ts = {(time_t)(hold_ms / 1000), (long)fmod(hold_ms, 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
  if (dirty) end_change(d->header);
  unlock_dict(d);
  return 0;
}
