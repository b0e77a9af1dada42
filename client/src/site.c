/*
 * site.c - the process's registry of call sites: (package, name) -> 32-bit site id.
 *
 * Records carry a site id instead of names, so a name is written once per process. The
 * registry lives in process memory, not in the segment, because ids must outlive any one
 * segment: a static FUNCMON_SITE cache filled before funcmon_init, or in a parent before
 * fork(), must still be right in the segment created later. Every segment mirrors the
 * registry: it gets all sites at creation and each new one as it is interned.
 *
 * Lookups are lock-free (dynamic names such as HTTP routes are looked up on every call): an
 * open-addressing table of ids that never resizes, each id stored with release after its
 * entry is complete. Inserts take a mutex. The table holds at most `limit` sites; later
 * ones get FUNCMON_SITE_OVERFLOW, so a runaway set of names cannot grow memory.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

struct site_entry {
    uint32_t hash;
    uint32_t name_len;
    uint32_t package_len;
    char name[FUNCMON_NAME_MAX + 1];
    char package[FUNCMON_PACKAGE_MAX + 1];
};

static struct {
    pthread_mutex_t lock;
    struct site_entry *entries; /* [0, count) valid; 0 and 1 reserved */
    uint32_t count;             /* written under lock, read with acquire */
    uint32_t limit;
    uint32_t *index; /* open addressing, 0 = empty */
    uint32_t index_mask;
    struct funcmon__segment *mirror;
} reg = {.lock = PTHREAD_MUTEX_INITIALIZER};

static uint32_t
hash_pair(const char *package, size_t plen, const char *name, size_t nlen)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < plen; i++)
        h = (h ^ (unsigned char)package[i]) * 16777619u;
    h = (h ^ 0xffu) * 16777619u;
    for (size_t i = 0; i < nlen; i++)
        h = (h ^ (unsigned char)name[i]) * 16777619u;
    return h;
}

static void
write_mirror(uint32_t id)
{
    struct funcmon__segment *seg = reg.mirror;
    const struct site_entry *e = &reg.entries[id];

    if (seg == NULL || seg->hdr == NULL || id >= seg->max_sites)
        return;
    struct funcmon_site_entry *s = &seg->sites[id];
    memcpy(s->name, e->name, e->name_len + 1);
    memcpy(s->package, e->package, e->package_len + 1);
    s->name_len = e->name_len;
    s->package_len = e->package_len;
    s->state = FUNCMON_SITE_PUBLISHED;
    /* Pairs with the consumer's acquire load of site_count before it reads the entry
     * (refresh_sites in proto/src/consumer.c). */
    __atomic_store_n(&seg->hdr->site_count, id + 1, __ATOMIC_RELEASE);
}

static void
set_entry(uint32_t id, const char *package, size_t plen, const char *name, size_t nlen, uint32_t hash)
{
    struct site_entry *e = &reg.entries[id];
    memcpy(e->name, name, nlen);
    e->name[nlen] = '\0';
    memcpy(e->package, package, plen);
    e->package[plen] = '\0';
    e->name_len = (uint32_t)nlen;
    e->package_len = (uint32_t)plen;
    e->hash = hash;
}

/* Allocates the tables on first use. Needs reg.lock. */
static int
ensure_tables(uint32_t wanted)
{
    if (reg.entries != NULL)
        return 0;
    uint32_t limit = wanted ? wanted : FUNCMON_DEFAULT_MAX_SITES;
    if (wanted == 0) {
        const char *env = getenv("FUNCMON_MAX_SITES");
        char *end;
        unsigned long v = env ? strtoul(env, &end, 10) : 0;
        if (env && *end == '\0' && v >= FUNCMON_MAX_SITES_MIN && v <= FUNCMON_MAX_SITES_MAX)
            limit = (uint32_t)v;
    }
    uint32_t slots = 1;
    while (slots < limit * 2)
        slots <<= 1;
    /* Not malloc: the allocation tracker must not see, or recurse into, the registry. */
    void *entries = mmap(NULL, (size_t)limit * sizeof(struct site_entry), PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    void *index =
        mmap(NULL, (size_t)slots * sizeof(uint32_t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (entries == MAP_FAILED || index == MAP_FAILED) {
        if (entries != MAP_FAILED)
            munmap(entries, (size_t)limit * sizeof(struct site_entry));
        if (index != MAP_FAILED)
            munmap(index, (size_t)slots * sizeof(uint32_t));
        return -1;
    }
    reg.entries = entries;
    reg.index_mask = slots - 1;
    reg.limit = limit;
    set_entry(FUNCMON_SITE_NONE, "", 0, "<none>", 6, 0);
    set_entry(FUNCMON_SITE_OVERFLOW, "funcmon", 7, "<overflow>", 10, 0);
    __atomic_store_n(&reg.count, 2, __ATOMIC_RELEASE);
    /* Last, with release: a lock-free lookup that sees the index sees all of the above. */
    __atomic_store_n(&reg.index, index, __ATOMIC_RELEASE);
    return 0;
}

uint32_t
funcmon__sites_limit(uint32_t wanted)
{
    pthread_mutex_lock(&reg.lock);
    ensure_tables(wanted);
    uint32_t limit = reg.limit;
    pthread_mutex_unlock(&reg.lock);
    return limit;
}

static uint32_t
lookup(const char *package, size_t plen, const char *name, size_t nlen, uint32_t hash)
{
    uint32_t *index = __atomic_load_n(&reg.index, __ATOMIC_ACQUIRE);
    if (index == NULL)
        return 0;
    for (uint32_t i = hash & reg.index_mask;; i = (i + 1) & reg.index_mask) {
        /* Pairs with the release store of the id after its entry was written. */
        uint32_t id = __atomic_load_n(&index[i], __ATOMIC_ACQUIRE);
        if (id == 0)
            return 0;
        const struct site_entry *e = &reg.entries[id];
        if (e->hash == hash && e->name_len == nlen && e->package_len == plen && memcmp(e->name, name, nlen) == 0 &&
            memcmp(e->package, package, plen) == 0)
            return id;
    }
}

FUNCMON_API uint32_t
funcmon_site(const char *name, const char *package)
{
    if (name == NULL || name[0] == '\0')
        name = "<unnamed>";
    if (package == NULL)
        package = "";
    size_t nlen = strnlen(name, FUNCMON_NAME_MAX), plen = strnlen(package, FUNCMON_PACKAGE_MAX);
    uint32_t hash = hash_pair(package, plen, name, nlen);
    uint32_t id = lookup(package, plen, name, nlen, hash);
    if (id != 0)
        return id;

    pthread_mutex_lock(&reg.lock);
    if (ensure_tables(0) != 0) {
        pthread_mutex_unlock(&reg.lock);
        return FUNCMON_SITE_OVERFLOW;
    }
    id = lookup(package, plen, name, nlen, hash);
    if (id == 0) {
        if (reg.count >= reg.limit) {
            id = FUNCMON_SITE_OVERFLOW;
            if (reg.mirror != NULL && reg.mirror->hdr != NULL)
                __atomic_fetch_add(&reg.mirror->hdr->sites_overflowed, 1, __ATOMIC_RELAXED);
        } else {
            id = reg.count;
            set_entry(id, package, plen, name, nlen, hash);
            uint32_t i = hash & reg.index_mask;
            while (reg.index[i] != 0)
                i = (i + 1) & reg.index_mask;
            __atomic_store_n(&reg.count, id + 1, __ATOMIC_RELEASE);
            __atomic_store_n(&reg.index[i], id, __ATOMIC_RELEASE);
            write_mirror(id);
        }
    }
    pthread_mutex_unlock(&reg.lock);
    return id;
}

FUNCMON_API uint32_t
funcmon__site_cached_slow(uint32_t *cache, const char *name, const char *package)
{
    uint32_t id = funcmon_site(name, package);
    __atomic_store_n(cache, id, __ATOMIC_RELAXED);
    return id;
}

void
funcmon__sites_mirror(struct funcmon__segment *seg)
{
    pthread_mutex_lock(&reg.lock);
    reg.mirror = seg;
    if (seg != NULL && ensure_tables(0) == 0) {
        uint32_t count = reg.count;
        for (uint32_t id = 0; id < count; id++)
            write_mirror(id);
    }
    pthread_mutex_unlock(&reg.lock);
}

void
funcmon__sites_atfork_prepare(void)
{
    pthread_mutex_lock(&reg.lock);
}

void
funcmon__sites_atfork_parent(void)
{
    pthread_mutex_unlock(&reg.lock);
}

void
funcmon__sites_atfork_child(void)
{
    reg.mirror = NULL;
    pthread_mutex_unlock(&reg.lock);
}
