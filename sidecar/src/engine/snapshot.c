/*
 * snapshot.c - the state file (SIDECAR.STATE_FILE) in msgpack, so that totals continue
 * across a restart of funcmond.
 *
 * Written every STATE_INTERVAL_S and when stopping: the aggregate (every function's
 * counts, sums, extremes, histograms as (bucket, count) pairs, Prometheus buckets with
 * their bounds) and, per attached segment, what was already counted from it (ring
 * positions, spill counters, drops), so a restarted sidecar neither counts twice nor
 * silently loses: records consumed after the last write are counted as lost, also those
 * of a client that came after it and is in no state file. The same is kept, and written,
 * for segments not attached now while their file exists: those the loaded file listed
 * that wait for room, and those let go in this run (attached again, they count nothing
 * twice). The write
 * goes to <file>.tmp, is fsync'd and renamed over the file, through the event loop, so a crash
 * leaves the old file or the new one, never half of one.
 *
 * The file is input like any other: every type and size is checked on load, and a file
 * that does not check out is moved aside (<file>.corrupt-<unix time>) with a warning.
 * What it can make funcmond allocate is bounded: its size is capped, every length in it
 * is checked against the bytes left before msgpack allocates for it, and the big arrays
 * (functions, segments) are unpacked one entry at a time, each entry under a cap. A path
 * that is not a regular file (a FIFO, a device) is neither opened for reading nor moved:
 * funcmond refuses to start. The temporary file is created anew (O_EXCL|O_NOFOLLOW), so
 * no symlink planted at <file>.tmp is ever followed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "snapshot.h"

#define FORMAT "funcmond-state"
#define VERSION 1
/* A function takes a few KB in the file (its histograms' occupied buckets), 200 KB at the
 * very most; 256 MiB holds the default 10,000 functions at 25 KB each, several times what
 * a busy service writes. The file is read whole, so this is also most of what loading it
 * can cost. */
#define MAX_FILE (256ull * 1024 * 1024)
/* The objects msgpack allocates for one entry of the file (a function, a segment, or the
 * rest of the file without them): 24 MiB is twice a segment with all 65,536 sites spilled
 * (seven objects a site), and seventy-five times a function with every histogram bucket
 * occupied. */
#define MAX_ENTRY_MEM (24ull * 1024 * 1024)
/* Segments listed, and the ring positions and spill counters kept for them until they are
 * attached again: room for 4096 segments (as many as funcmond maps) of 4096 threads each. */
#define MAX_SEGMENTS 65536u
#define MAX_RESTORE_MEM (128ull * 1024 * 1024)

struct funcmond_snapshot_io {
    msgpack_sbuffer buf;
    int fd;
    int pending; /* steps not completed yet */
    int failed;
    char tmp[FUNCMOND_PATH_MAX + 8];
    struct funcmond_op op_write, op_fsync, op_rename;
};

/* What was counted of one site's spill counters: in the file, a tuple of the fields in
 * this order, the buckets as 4-byte little-endian counters in one bin. Older files stop
 * after the errors or the client errors (the rest 0). */
struct restore_spill {
    uint64_t site;
    uint64_t calls;
    uint64_t errors;
    uint64_t client_errors;
    uint64_t ticks;
    uint64_t buckets_credited;
    uint32_t buckets[FUNCMON_SPILL_BUCKETS];
    int has_buckets; /* the site's buckets were read: buckets_credited and buckets[] hold */
};
#define SPILL_FIELDS_MIN 3
#define SPILL_FIELDS_MAX 7

/* What the state file said about one segment. */
struct restore_segment {
    char name[256];
    int32_t pid;
    uint64_t start_time;
    uint64_t *tails;
    uint32_t n_tails;
    uint64_t dropped;
    uint32_t n_spill;
    struct restore_spill *spill;
};

struct funcmond_restore {
    struct restore_segment *segs;
    uint32_t n;
};

/* ---- writing ---- */

static void
pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void
pack_key_u64(msgpack_packer *pk, const char *key, uint64_t v)
{
    pack_str(pk, key);
    msgpack_pack_uint64(pk, v);
}

static void
pack_bucket(void *arg, uint64_t lo, uint64_t hi, uint64_t n)
{
    msgpack_packer *pk = arg;
    (void)hi;
    msgpack_pack_array(pk, 2);
    msgpack_pack_uint64(pk, lo);
    msgpack_pack_uint64(pk, n);
}

static void
count_one(void *arg, uint64_t lo, uint64_t hi, uint64_t n)
{
    (void)lo;
    (void)hi;
    (void)n;
    (*(uint32_t *)arg)++;
}

static void
pack_hist(msgpack_packer *pk, const char *key, const struct funcmond_hist *h)
{
    uint32_t n = 0;
    funcmond_hist_foreach(h, count_one, &n);
    pack_str(pk, key);
    msgpack_pack_map(pk, 4);
    pack_key_u64(pk, "sum", h->sum);
    pack_key_u64(pk, "min", h->min);
    pack_key_u64(pk, "max", h->max);
    pack_str(pk, "buckets");
    msgpack_pack_array(pk, n);
    funcmond_hist_foreach(h, pack_bucket, pk);
}

static void
pack_u64_array(msgpack_packer *pk, const char *key, const uint64_t *v, uint32_t n)
{
    pack_str(pk, key);
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < n; i++)
        msgpack_pack_uint64(pk, v[i]);
}

static void
pack_function(msgpack_packer *pk, const struct funcmond_aggregate *agg, const struct funcmond_function *f)
{
    msgpack_pack_map(pk, 21);
    pack_str(pk, "service");
    pack_str(pk, f->service);
    pack_str(pk, "package");
    pack_str(pk, f->package);
    pack_str(pk, "name");
    pack_str(pk, f->name);
    pack_key_u64(pk, "overflow", (uint64_t)f->overflow);
    pack_key_u64(pk, "calls", f->calls);
    pack_key_u64(pk, "errors", f->errors);
    pack_key_u64(pk, "cancelled", f->cancelled);
    pack_key_u64(pk, "deadline_exceeded", f->deadline_exceeded);
    pack_key_u64(pk, "client_errors", f->client_errors);
    pack_key_u64(pk, "dropped", f->dropped);
    pack_key_u64(pk, "total_ns", f->total_ns);
    pack_key_u64(pk, "min_ns", f->min_ns);
    pack_key_u64(pk, "max_ns", f->max_ns);
    pack_key_u64(pk, "total_bytes", f->total_bytes);
    pack_key_u64(pk, "max_bytes", f->max_bytes);
    pack_key_u64(pk, "freed_bytes", f->freed_bytes);
    pack_key_u64(pk, "last_real_ns", f->last_real_ns);
    struct funcmond_hist dur = funcmond_agg_durations(f);
    pack_hist(pk, "dur", &dur);
    pack_hist(pk, "mem", &f->mem);
    pack_u64_array(pk, "dur_buckets", f->dur_buckets, agg->n_dur_bounds + 1);
    pack_u64_array(pk, "mem_buckets", f->mem_buckets, agg->n_mem_bounds + 1);
}

/* Whether p has counted anything from its site's spill counters. */
static int
site_spilled(const struct funcmond_process *p, uint32_t site)
{
    return p->spill_calls_seen[site] != 0 || p->spill_errors_seen[site] != 0 || p->spill_client_errors_seen[site] != 0 ||
           p->spill_ticks_seen[site] != 0 || p->spill_buckets_seen[site] != NULL;
}

/* What p has counted from its site's spill counters. */
static void
spill_of(const struct funcmond_process *p, uint32_t site, struct restore_spill *out)
{
    const struct funcmond_spill_buckets_seen *b = p->spill_buckets_seen[site];
    memset(out, 0, sizeof(*out));
    out->site = site;
    out->calls = p->spill_calls_seen[site];
    out->errors = p->spill_errors_seen[site];
    out->client_errors = p->spill_client_errors_seen[site];
    out->ticks = p->spill_ticks_seen[site];
    if (b != NULL) {
        out->has_buckets = 1;
        out->buckets_credited = b->credited;
        memcpy(out->buckets, b->seen, sizeof(out->buckets));
    }
}

static void
pack_spill(msgpack_packer *pk, const struct restore_spill *sp)
{
    msgpack_pack_array(pk, sp->has_buckets ? SPILL_FIELDS_MAX : SPILL_FIELDS_MAX - 1);
    msgpack_pack_uint64(pk, sp->site);
    msgpack_pack_uint64(pk, sp->calls);
    msgpack_pack_uint64(pk, sp->errors);
    msgpack_pack_uint64(pk, sp->client_errors);
    msgpack_pack_uint64(pk, sp->ticks);
    msgpack_pack_uint64(pk, sp->buckets_credited);
    if (sp->has_buckets) {
        unsigned char bytes[sizeof(sp->buckets)];
        for (uint32_t b = 0; b < FUNCMON_SPILL_BUCKETS; b++)
            for (uint32_t k = 0; k < 4; k++)
                bytes[b * 4 + k] = (unsigned char)(sp->buckets[b] >> (8 * k));
        msgpack_pack_bin(pk, sizeof(bytes));
        msgpack_pack_bin_body(pk, bytes, sizeof(bytes));
    }
}

static void
pack_segment(msgpack_packer *pk, const struct funcmond_process *p)
{
    uint32_t count = p->c.sites_known, n_spill = 0;
    for (uint32_t s = 0; s < count; s++)
        n_spill += site_spilled(p, s);
    msgpack_pack_map(pk, 6);
    pack_str(pk, "name");
    pack_str(pk, p->shm_name);
    pack_key_u64(pk, "pid", (uint64_t)p->pid);
    pack_key_u64(pk, "start_time", p->proc_start_time);
    pack_key_u64(pk, "dropped", p->dropped_seen);
    pack_str(pk, "tails");
    msgpack_pack_array(pk, p->c.geo.max_threads);
    for (uint32_t i = 0; i < p->c.geo.max_threads; i++)
        msgpack_pack_uint64(pk, p->c.rings[i].tail);
    pack_str(pk, "spill");
    msgpack_pack_array(pk, n_spill);
    for (uint32_t s = 0; s < count; s++) {
        struct restore_spill sp;
        if (!site_spilled(p, s))
            continue;
        spill_of(p, s, &sp);
        pack_spill(pk, &sp);
    }
}

static void
pack_restore_segment(msgpack_packer *pk, const struct restore_segment *s)
{
    msgpack_pack_map(pk, 6);
    pack_str(pk, "name");
    pack_str(pk, s->name);
    pack_key_u64(pk, "pid", (uint64_t)s->pid);
    pack_key_u64(pk, "start_time", s->start_time);
    pack_key_u64(pk, "dropped", s->dropped);
    pack_u64_array(pk, "tails", s->tails, s->n_tails);
    pack_str(pk, "spill");
    msgpack_pack_array(pk, s->n_spill);
    for (uint32_t k = 0; k < s->n_spill; k++)
        pack_spill(pk, &s->spill[k]);
}

static int
same_segment(const struct restore_segment *s, const struct funcmond_process *p)
{
    return s->pid == p->pid && s->start_time == p->proc_start_time && strcmp(s->name, p->shm_name) == 0;
}

static void
drop_restore(struct funcmond_restore *r, uint32_t i)
{
    free(r->segs[i].tails);
    free(r->segs[i].spill);
    r->segs[i] = r->segs[--r->n];
}

/* Drops what is kept about segments whose file is gone: no reader can attach them again. */
static void
prune_restore(struct funcmond *d)
{
    struct funcmond_restore *r = d->restore;
    char path[FUNCMOND_PATH_MAX + 256];
    struct stat st;
    for (uint32_t i = 0; r != NULL && i < r->n;) {
        snprintf(path, sizeof(path), "%s/%s", d->cfg.shm_dir, r->segs[i].name);
        /* a name from the file that is no segment's (a path) is no file of SHM_DIR either */
        if (strchr(r->segs[i].name, '/') != NULL || (lstat(path, &st) != 0 && errno == ENOENT))
            drop_restore(r, i);
        else
            i++;
    }
}

/* Whether the restore entry s goes into the file besides the attached segments: it is
 * not one of them (waiting for room, or let go with its file still there), and it fits
 * under the bounds the loader enforces (*n_segs, *mem: what the file holds so far), so
 * that the next run neither counts what was already counted as lost nor sets the file
 * aside. */
static int
carried(const struct funcmond *d, const struct restore_segment *s, uint32_t *n_segs, uint64_t *mem)
{
    for (const struct funcmond_process *p = d->procs; p != NULL; p = p->next)
        if (!p->detaching && same_segment(s, p))
            return 0;
    uint64_t need = s->n_tails * sizeof(*s->tails) + s->n_spill * sizeof(*s->spill);
    if (*n_segs >= MAX_SEGMENTS || *mem > MAX_RESTORE_MEM || need > MAX_RESTORE_MEM - *mem)
        return 0;
    (*n_segs)++;
    *mem += need;
    return 1;
}

static void
pack_state(struct funcmond *d, msgpack_packer *pk)
{
    const struct funcmond_aggregate *agg = &d->agg;
    const struct funcmond_restore *r = d->restore;
    uint32_t n_segs = 0, n_attached, n_carried;
    uint64_t mem = 0, mem_attached; /* at most what the attached segments' entries make the loader allocate */
    prune_restore(d);
    for (const struct funcmond_process *p = d->procs; p != NULL; p = p->next)
        if (!p->detaching) {
            n_segs++;
            mem += p->c.geo.max_threads * sizeof(uint64_t) + p->c.sites_known * sizeof(struct restore_spill);
        }
    n_attached = n_segs;
    mem_attached = mem;
    for (uint32_t i = 0; r != NULL && i < r->n; i++)
        carried(d, &r->segs[i], &n_segs, &mem);
    n_carried = n_segs - n_attached;
    msgpack_pack_map(pk, 8);
    pack_str(pk, "format");
    pack_str(pk, FORMAT);
    pack_key_u64(pk, "version", VERSION);
    pack_key_u64(pk, "saved_real_ns", funcmond_real_ns());
    pack_u64_array(pk, "duration_bounds_ns", agg->dur_bounds_ns, agg->n_dur_bounds);
    pack_u64_array(pk, "memory_bounds", agg->mem_bounds, agg->n_mem_bounds);
    pack_str(pk, "counters");
    msgpack_pack_map(pk, 5);
    pack_key_u64(pk, "records", d->counters.records);
    pack_key_u64(pk, "dropped", d->counters.dropped);
    pack_key_u64(pk, "bad_records", d->counters.bad_records);
    pack_key_u64(pk, "lost", d->counters.lost);
    pack_key_u64(pk, "overflow_folds", agg->overflow_folds);
    pack_str(pk, "functions");
    msgpack_pack_array(pk, agg->n_fns);
    for (uint32_t i = 0; i < agg->n_fns; i++)
        pack_function(pk, agg, agg->fns[i]);
    pack_str(pk, "segments");
    msgpack_pack_array(pk, n_segs);
    for (const struct funcmond_process *p = d->procs; p != NULL; p = p->next)
        if (!p->detaching)
            pack_segment(pk, p);
    /* The same choice again, on the same counts: exactly n_carried entries. */
    n_segs = n_attached;
    mem = mem_attached;
    for (uint32_t i = 0, n = 0; r != NULL && i < r->n && n < n_carried; i++)
        if (carried(d, &r->segs[i], &n_segs, &mem))
            pack_restore_segment(pk, &r->segs[i]), n++;
}

int
funcmond_snapshot_image(struct funcmond *d, char **image, size_t *len)
{
    msgpack_sbuffer buf;
    msgpack_packer pk;
    msgpack_sbuffer_init(&buf);
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    pack_state(d, &pk);
    if (buf.data == NULL) { /* the first write found no memory (a later one leaves it short) */
        msgpack_sbuffer_destroy(&buf);
        return -ENOMEM;
    }
    *len = buf.size;
    *image = msgpack_sbuffer_release(&buf);
    return 0;
}

static void
finish(struct funcmond *d)
{
    struct funcmond_snapshot_io *io = d->snap;
    close(io->fd);
    if (io->failed)
        unlink(io->tmp);
    msgpack_sbuffer_destroy(&io->buf);
    free(io);
    d->snap = NULL;
}

/* A completion of one of the state file's steps. */
static void
on_snapshot_step(struct funcmond *d, struct funcmond_op *op, int res)
{
    struct funcmond_snapshot_io *io = d->snap;
    if (io == NULL)
        return;
    const char *step = op == &io->op_write ? "write" : op == &io->op_fsync ? "fsync" : "rename";
    if (res < 0 || (op == &io->op_write && (size_t)res != io->buf.size)) {
        if (!io->failed)
            LOG_WARN("state file %s: %s failed: %s", d->cfg.state_file, step, res < 0 ? strerror(-res) : "short write");
        io->failed = 1;
    }
    if (--io->pending == 0)
        finish(d);
}

/* Runs the loop's completions until the write in flight is done. */
static void
wait_written(struct funcmond *d)
{
    while (d->snap != NULL && funcmond_loop_complete_one(d) == 0)
        ;
}

void
funcmond_snapshot_write(struct funcmond *d, int wait)
{
    if (d->snap != NULL) {
        if (!wait)
            return; /* the previous one is still being written */
        wait_written(d);
    }
    struct funcmond_snapshot_io *io = calloc(1, sizeof(*io));
    if (io == NULL)
        return;
    msgpack_sbuffer_init(&io->buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &io->buf, msgpack_sbuffer_write);
    pack_state(d, &pk);
    snprintf(io->tmp, sizeof(io->tmp), "%s.tmp", d->cfg.state_file);
    /* The rename below replaces whatever has the file's name: a regular file or a symlink
     * (itself, not its target) is fine; a device node or a FIFO put there since the start
     * is left alone. */
    struct stat st;
    if (lstat(d->cfg.state_file, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
        LOG_WARN("state file %s is now %s, not a regular file: not written", d->cfg.state_file, funcmond_file_kind(st.st_mode));
        msgpack_sbuffer_destroy(&io->buf);
        free(io);
        return;
    }
    /* Never written through a symlink or into a file someone else prepared (in a shared
     * directory another user could plant <file>.tmp -> a file of ours): a leftover of ours
     * is removed (unlink does not follow symlinks) and the file created anew, O_EXCL
     * failing on any name that exists, dangling symlinks included. */
    if (unlink(io->tmp) != 0 && errno != ENOENT)
        LOG_DEBUG("state file %s: cannot remove a leftover: %s", io->tmp, strerror(errno));
    io->fd = open(io->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (io->fd < 0) {
        LOG_WARN("state file %s: %s", io->tmp, strerror(errno));
        msgpack_sbuffer_destroy(&io->buf);
        free(io);
        return;
    }
    io->op_write = io->op_fsync = io->op_rename = (struct funcmond_op){.on_complete = on_snapshot_step, .while_stopping = 1};
    d->snap = io;
    io->pending = 3;
    /* write -> fsync -> rename, linked: a failed step cancels the ones after it. */
    if (funcmond_loop_replace_file(d, &io->op_write, &io->op_fsync, &io->op_rename, io->fd, io->buf.data, (uint32_t)io->buf.size,
                                   io->tmp, d->cfg.state_file) != 0) {
        LOG_WARN("state file %s: not written now, the event loop is full", io->tmp);
        d->snap = NULL;
        close(io->fd);
        unlink(io->tmp);
        msgpack_sbuffer_destroy(&io->buf);
        free(io);
        return;
    }
    if (wait)
        wait_written(d);
}

/* ---- reading ---- */

static const msgpack_object *
get(const msgpack_object *map, const char *key, msgpack_object_type type)
{
    if (map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t n = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == n && memcmp(kv->key.via.str.ptr, key, n) == 0)
            return kv->val.type == type ? &kv->val : NULL;
    }
    return NULL;
}

/* The unsigned integer field `key` of map. Returns 0, or -EBADMSG when it is absent or
 * of another type. */
static int
get_u64(const msgpack_object *map, const char *key, uint64_t *out)
{
    const msgpack_object *o = get(map, key, MSGPACK_OBJECT_POSITIVE_INTEGER);
    if (o == NULL) {
        /* msgpack writes 0 as a positive fixint, never negative; anything else is wrong */
        return -EBADMSG;
    }
    *out = o->via.u64;
    return 0;
}

/* Copies a string field into dst (size dstlen, NUL-terminated); it must fit. Returns 0, or
 * -EBADMSG when it is absent, too long or holds a NUL. */
static int
get_str(const msgpack_object *map, const char *key, char *dst, size_t dstlen)
{
    const msgpack_object *o = get(map, key, MSGPACK_OBJECT_STR);
    if (o == NULL || o->via.str.size >= dstlen || memchr(o->via.str.ptr, '\0', o->via.str.size) != NULL)
        return -EBADMSG;
    memcpy(dst, o->via.str.ptr, o->via.str.size);
    dst[o->via.str.size] = '\0';
    return 0;
}

/* The array of unsigned integers `key` of map into out[0..max). Returns 0 with *n set, or
 * -EBADMSG when it is absent, longer than max or holds anything else. */
static int
get_u64_array(const msgpack_object *map, const char *key, uint64_t *out, uint32_t max, uint32_t *n)
{
    const msgpack_object *o = get(map, key, MSGPACK_OBJECT_ARRAY);
    if (o == NULL || o->via.array.size > max)
        return -EBADMSG;
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        if (o->via.array.ptr[i].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return -EBADMSG;
        out[i] = o->via.array.ptr[i].via.u64;
    }
    *n = o->via.array.size;
    return 0;
}

/* The histogram `key` of map, added into h. Returns 0, -EBADMSG, or -ENOMEM. */
static int
load_hist(const msgpack_object *map, const char *key, struct funcmond_hist *h)
{
    const msgpack_object *o = get(map, key, MSGPACK_OBJECT_MAP), *b;
    uint64_t sum, min, max;
    if (o == NULL || get_u64(o, "sum", &sum) || get_u64(o, "min", &min) || get_u64(o, "max", &max) ||
        (b = get(o, "buckets", MSGPACK_OBJECT_ARRAY)) == NULL)
        return -EBADMSG;
    for (uint32_t i = 0; i < b->via.array.size; i++) {
        const msgpack_object *e = &b->via.array.ptr[i];
        if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 2 ||
            e->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
            e->via.array.ptr[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return -EBADMSG;
        if (funcmond_hist_add(h, e->via.array.ptr[0].via.u64, e->via.array.ptr[1].via.u64) != 0)
            return -ENOMEM;
    }
    if (h->count != 0) {
        h->sum = sum;
        h->min = min;
        h->max = max;
    }
    return 0;
}

/* Adds a saved function's bucket counts to buckets (n bounds, n + 1 buckets). With the
 * bounds it was saved under (saved, n_saved of them, NULL when they differ) exactly; under
 * other bounds rebuilt from its histogram h (within its resolution), since exact counts for
 * new bounds were never taken. */
static void
add_buckets(uint64_t *buckets, const uint64_t *bounds, uint32_t n, const uint64_t *saved, uint32_t n_saved,
            const struct funcmond_hist *h)
{
    for (uint32_t i = 0; i <= n; i++) {
        if (saved != NULL && n_saved == n + 1) {
            buckets[i] += saved[i];
        } else {
            uint64_t upto = i < n ? funcmond_hist_count_le(h, bounds[i]) : h->count;
            uint64_t below = i > 0 ? funcmond_hist_count_le(h, bounds[i - 1]) : 0;
            buckets[i] += upto - below;
        }
    }
}

/* One entry of "functions", added into the aggregate. Returns 0, -EBADMSG, or -ENOMEM. */
static int
load_function(struct funcmond *d, const msgpack_object *o, int same_dur, int same_mem)
{
    struct funcmond_aggregate *agg = &d->agg;
    char service[FUNCMON_SERVICE_MAX + 1], package[FUNCMON_PACKAGE_MAX + 1], name[FUNCMON_NAME_MAX + 1];
    uint64_t v[12];
    static const char *const keys[12] = {"overflow", "calls",  "errors",      "cancelled", "deadline_exceeded", "total_ns",
                                         "min_ns",   "max_ns", "total_bytes", "max_bytes", "freed_bytes",       "last_real_ns"};
    if (o->type != MSGPACK_OBJECT_MAP || get_str(o, "service", service, sizeof(service)) ||
        get_str(o, "package", package, sizeof(package)) || get_str(o, "name", name, sizeof(name)) || name[0] == '\0')
        return -EBADMSG;
    for (int i = 0; i < 12; i++)
        if (get_u64(o, keys[i], &v[i]))
            return -EBADMSG;
    /* Restored under today's bounds: an overflow entry stays one (its service's, or the
     * global one past FUNCMOND_OVERFLOW_ENTRIES). */
    uint32_t id;
    int ret = v[0] ? funcmond_agg_overflow(agg, service, &id) : funcmond_agg_function(agg, service, package, name, &id);
    if (ret != 0) /* only when memory ran out */
        return ret;
    struct funcmond_function *f = agg->fns[id];
    struct funcmond_hist dur, mem;
    funcmond_hist_init(&dur, FUNCMOND_DURATION_SUB_BITS);
    funcmond_hist_init(&mem, FUNCMOND_MEMORY_SUB_BITS);
    uint64_t db[FUNCMOND_MAX_BUCKETS + 1], mb[FUNCMOND_MAX_BUCKETS + 1];
    uint32_t ndb, nmb;
    if ((ret = load_hist(o, "dur", &dur)) != 0 || (ret = load_hist(o, "mem", &mem)) != 0 ||
        (ret = get_u64_array(o, "dur_buckets", db, FUNCMOND_MAX_BUCKETS + 1, &ndb)) != 0 ||
        (ret = get_u64_array(o, "mem_buckets", mb, FUNCMOND_MAX_BUCKETS + 1, &nmb)) != 0) {
        funcmond_hist_free(&dur);
        funcmond_hist_free(&mem);
        return ret;
    }
    /* Add, do not overwrite: two saved names may fold into one overflow entry. */
    f->calls += v[1];
    f->errors += v[2];
    f->cancelled += v[3];
    f->deadline_exceeded += v[4];
    uint64_t client_errors;
    if (get_u64(o, "client_errors", &client_errors) == 0) /* absent in older snapshots */
        f->client_errors += client_errors;
    uint64_t dropped;
    if (get_u64(o, "dropped", &dropped) == 0) /* absent in older snapshots */
        f->dropped += dropped;
    f->total_ns += v[5];
    if (dur.count != 0 && v[6] < f->min_ns)
        f->min_ns = v[6];
    if (v[7] > f->max_ns)
        f->max_ns = v[7];
    f->total_bytes += v[8];
    if (v[9] > f->max_bytes)
        f->max_bytes = v[9];
    f->freed_bytes += v[10];
    if (v[11] > f->last_real_ns)
        f->last_real_ns = v[11];
    funcmond_hist_merge(&f->dur, &dur);
    funcmond_hist_merge(&f->mem, &mem);
    add_buckets(f->dur_buckets, agg->dur_bounds_ns, agg->n_dur_bounds, same_dur ? db : NULL, ndb, &dur);
    add_buckets(f->mem_buckets, agg->mem_bounds, agg->n_mem_bounds, same_mem ? mb : NULL, nmb, &mem);
    funcmond_hist_free(&dur);
    funcmond_hist_free(&mem);
    return 0;
}

/* One tuple of a segment's "spill" into out: SPILL_FIELDS_MIN to SPILL_FIELDS_MAX fields,
 * unsigned integers but the last, the buckets' bin (at most FUNCMON_SPILL_BUCKETS
 * counters, the missing ones 0). Returns 0 or -EBADMSG. */
static int
load_spill(const msgpack_object *e, struct restore_spill *out)
{
    uint64_t v[SPILL_FIELDS_MAX - 1] = {0};
    memset(out, 0, sizeof(*out));
    if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size < SPILL_FIELDS_MIN || e->via.array.size > SPILL_FIELDS_MAX)
        return -EBADMSG;
    for (uint32_t k = 0; k < e->via.array.size && k < SPILL_FIELDS_MAX - 1; k++) {
        if (e->via.array.ptr[k].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return -EBADMSG;
        v[k] = e->via.array.ptr[k].via.u64;
    }
    if (v[0] >= FUNCMON_MAX_SITES_MAX)
        return -EBADMSG;
    out->site = v[0];
    out->calls = v[1];
    out->errors = v[2];
    out->client_errors = v[3];
    out->ticks = v[4];
    out->buckets_credited = v[5];
    if (e->via.array.size == SPILL_FIELDS_MAX) {
        const msgpack_object *b = &e->via.array.ptr[SPILL_FIELDS_MAX - 1];
        if (b->type != MSGPACK_OBJECT_BIN || b->via.bin.size > sizeof(out->buckets) || b->via.bin.size % 4 != 0)
            return -EBADMSG;
        const unsigned char *bytes = (const unsigned char *)b->via.bin.ptr;
        for (uint32_t k = 0; k < b->via.bin.size; k++)
            out->buckets[k / 4] |= (uint32_t)bytes[k] << (8 * (k % 4));
        out->has_buckets = 1;
    }
    return 0;
}

/* One entry of "segments" into s (its arrays allocated even on failure, for the caller to
 * free). Returns 0, -EBADMSG, or -ENOMEM. */
static int
load_segment(const msgpack_object *o, struct restore_segment *s)
{
    uint64_t pid;
    const msgpack_object *tails, *spill;
    if (o->type != MSGPACK_OBJECT_MAP || get_str(o, "name", s->name, sizeof(s->name)) || get_u64(o, "pid", &pid) ||
        pid > INT32_MAX || get_u64(o, "start_time", &s->start_time) || get_u64(o, "dropped", &s->dropped) ||
        (tails = get(o, "tails", MSGPACK_OBJECT_ARRAY)) == NULL || tails->via.array.size > FUNCMON_MAX_THREADS_MAX ||
        (spill = get(o, "spill", MSGPACK_OBJECT_ARRAY)) == NULL || spill->via.array.size > FUNCMON_MAX_SITES_MAX)
        return -EBADMSG;
    s->pid = (int32_t)pid;
    s->n_tails = tails->via.array.size;
    s->tails = calloc(s->n_tails ? s->n_tails : 1, sizeof(*s->tails));
    s->n_spill = spill->via.array.size;
    s->spill = calloc(s->n_spill ? s->n_spill : 1, sizeof(*s->spill));
    if (s->tails == NULL || s->spill == NULL)
        return -ENOMEM;
    for (uint32_t i = 0; i < s->n_tails; i++) {
        if (tails->via.array.ptr[i].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return -EBADMSG;
        s->tails[i] = tails->via.array.ptr[i].via.u64;
    }
    for (uint32_t i = 0; i < s->n_spill; i++)
        if (load_spill(&spill->via.array.ptr[i], &s->spill[i]) != 0)
            return -EBADMSG;
    return 0;
}

static void
free_restore(struct funcmond_restore *r)
{
    if (r == NULL)
        return;
    for (uint32_t i = 0; i < r->n; i++) {
        free(r->segs[i].tails);
        free(r->segs[i].spill);
    }
    free(r->segs);
    free(r);
}

static int
same_bounds(const uint64_t *a, uint32_t na, const uint64_t *b, uint32_t nb)
{
    return na == nb && memcmp(a, b, na * sizeof(*a)) == 0;
}

/* ---- walking msgpack without building it ---- */

/* The big-endian integer of `n` bytes at p[*off], if they are there: 0, or -EBADMSG. */
static int
take_be(const unsigned char *p, size_t len, size_t *off, unsigned n, uint64_t *v)
{
    if (len - *off < n)
        return -EBADMSG;
    *v = 0;
    for (unsigned i = 0; i < n; i++)
        *v = *v << 8 | p[(*off)++];
    return 0;
}

/*
 * Walks the one msgpack object at p[0..len) without allocating: *end is the offset just
 * past it, *mem what msgpack_unpack_next would allocate for its arrays and maps. Returns
 * 0; -EBADMSG when it is not msgpack or is cut short; -EOVERFLOW when a length claims more
 * than the bytes left (each element takes at least one byte), which is how a 5-byte header
 * asking for 2^32 elements is stopped before it reaches the allocator.
 */
static int
walk(const unsigned char *p, size_t len, size_t *end, uint64_t *mem)
{
    size_t off = 0;
    uint64_t pending = 1, n; /* objects still to read */

    *mem = 0;
    while (pending > 0) {
        if (off >= len)
            return -EBADMSG;
        unsigned c = p[off++];
        uint64_t skip = 0, count = 0, per = 0; /* bytes to skip; elements and their objects' size */
        pending--;
        if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3)
            ;
        else if (c <= 0x8f)
            count = c & 0x0f, per = 2 * sizeof(msgpack_object);
        else if (c <= 0x9f)
            count = c & 0x0f, per = sizeof(msgpack_object);
        else if (c <= 0xbf)
            skip = c & 0x1f;
        else {
            switch (c) {
            /* bin and str 8/16/32: a length, then the bytes */
            case 0xc4:
            case 0xc5:
            case 0xc6:
            case 0xd9:
            case 0xda:
            case 0xdb:
                if (take_be(p, len, &off, c == 0xc4 || c == 0xd9 ? 1 : c == 0xc5 || c == 0xda ? 2 : 4, &skip))
                    return -EBADMSG;
                break;
            /* ext 8/16/32: a length, a type byte, the bytes */
            case 0xc7:
            case 0xc8:
            case 0xc9:
                if (take_be(p, len, &off, c == 0xc7 ? 1 : c == 0xc8 ? 2 : 4, &skip))
                    return -EBADMSG;
                skip += 1;
                break;
            /* float 32/64 */
            case 0xca:
            case 0xcb:
                skip = c == 0xca ? 4 : 8;
                break;
            /* uint and int 8/16/32/64 */
            case 0xcc:
            case 0xcd:
            case 0xce:
            case 0xcf:
            case 0xd0:
            case 0xd1:
            case 0xd2:
            case 0xd3:
                skip = 1u << (c & 3);
                break;
            /* fixext 1/2/4/8/16: a type byte, the bytes */
            case 0xd4:
            case 0xd5:
            case 0xd6:
            case 0xd7:
            case 0xd8:
                skip = 1 + (1u << (c - 0xd4));
                break;
            /* array and map 16/32: a count, then the elements */
            case 0xdc:
            case 0xdd:
            case 0xde:
            case 0xdf:
                if (take_be(p, len, &off, c == 0xdc || c == 0xde ? 2 : 4, &n))
                    return -EBADMSG;
                count = n;
                per = c <= 0xdd ? sizeof(msgpack_object) : 2 * sizeof(msgpack_object);
                break;
            default: /* 0xc1: never used */
                return -EBADMSG;
            }
        }
        if (skip > len - off)
            return -EOVERFLOW;
        off += skip;
        if (count != 0) {
            uint64_t objects = per == sizeof(msgpack_object) ? count : 2 * count;
            if (objects > len - off || pending + objects > len - off)
                return -EOVERFLOW;
            pending += objects;
            *mem += count * per;
        }
    }
    *end = off;
    return 0;
}

/* The count of the array whose header is at p[*off] (moved past it): 0, or -EBADMSG. */
static int
array_header(const unsigned char *p, size_t len, size_t *off, uint64_t *count)
{
    if (*off >= len)
        return -EBADMSG;
    unsigned c = p[(*off)++];
    if (c >= 0x90 && c <= 0x9f) {
        *count = c & 0x0f;
        return 0;
    }
    if (c == 0xdc || c == 0xdd)
        return take_be(p, len, off, c == 0xdc ? 2 : 4, count);
    return -EBADMSG;
}

/* Whether the str at p[0..len) (already walked) is `key`. */
static int
str_is(const unsigned char *p, size_t len, const char *key)
{
    size_t off = 1, n = strlen(key);
    uint64_t size;
    if (len == 0)
        return 0;
    if (p[0] >= 0xa0 && p[0] <= 0xbf)
        size = p[0] & 0x1f;
    else if (p[0] < 0xd9 || p[0] > 0xdb || take_be(p, len, &off, 1u << (p[0] - 0xd9), &size))
        return 0;
    return size == n && len - off >= n && memcmp(p + off, key, n) == 0;
}

/* One entry: walked, its objects under MAX_ENTRY_MEM, unpacked into msg. Returns 0, or
 * with *why set: -EBADMSG (not msgpack, cut short, or more than one object), -EOVERFLOW
 * (a length beyond the bytes), -E2BIG (more objects than an entry funcmond writes). */
static int
unpack_entry(const unsigned char *p, size_t len, size_t *used, msgpack_unpacked *msg, const char **why)
{
    uint64_t mem;
    size_t off = 0;
    int w = walk(p, len, used, &mem);
    if (w != 0) {
        *why = w == -EOVERFLOW ? "a length in it exceeds the file" : "not msgpack, or truncated";
        return w;
    }
    if (mem > MAX_ENTRY_MEM) {
        *why = "an entry larger than any funcmond writes";
        return -E2BIG;
    }
    msgpack_unpacked_destroy(msg);
    msgpack_unpacked_init(msg);
    if (msgpack_unpack_next(msg, (const char *)p, *used, &off) != MSGPACK_UNPACK_SUCCESS || off != *used) {
        *why = "not msgpack, or truncated";
        return -EBADMSG;
    }
    return 0;
}

/* Parses the file's bytes into d. Returns 0, or with *why set: -EBADMSG (not msgpack, not
 * a state file, malformed), -EOVERFLOW (a length beyond the bytes), -E2BIG (more than
 * funcmond keeps), -ENOMEM. On failure d may hold part of the file. */
static int
load_state(struct funcmond *d, const char *bytes, size_t len, const char **why)
{
    const unsigned char *data = (const unsigned char *)bytes;
    msgpack_unpacked msg, entry;
    size_t off = 1, end, used, key_at = 0, key_len = 0, skel_len;
    size_t fns_at = 0, fns_end = 0, segs_at = 0, segs_end = 0; /* where the two arrays lie; 0: not found */
    int ret = -EBADMSG;
    char format[32];
    uint64_t version, dbn[FUNCMOND_MAX_BUCKETS], mbn[FUNCMOND_MAX_BUCKETS], mem, n, count;
    uint32_t ndbn, nmbn;
    const msgpack_object *counters;
    /* The root with its two big arrays replaced by empty ones, small enough to unpack as a
     * whole; the arrays' entries are unpacked one at a time from where they lie. */
    unsigned char *skeleton = NULL;

    msgpack_unpacked_init(&msg);
    msgpack_unpacked_init(&entry);
    ret = walk(data, len, &end, &mem);
    *why = ret == -EOVERFLOW ? "a length in it exceeds the file" : "not msgpack, or truncated";
    if (ret != 0)
        goto out;
    ret = -EBADMSG;
    *why = "not a funcmond state file";
    if (!((data[0] >= 0x80 && data[0] <= 0x8f) || data[0] == 0xde || data[0] == 0xdf))
        goto out;
    if (data[0] <= 0x8f)
        n = data[0] & 0x0f;
    else if (take_be(data, end, &off, data[0] == 0xde ? 2 : 4, &n))
        goto out;
    if ((skeleton = malloc(end)) == NULL) {
        *why = "out of memory";
        ret = -ENOMEM;
        goto out;
    }
    memcpy(skeleton, data, off);
    skel_len = off;
    for (uint64_t i = 0; i < 2 * n; i++, off += used) {
        size_t *at = NULL, *stop = NULL;
        if ((ret = walk(data + off, end - off, &used, &mem)) != 0) /* cannot fail: the root walked */
            goto out;
        if (i % 2 == 1 && ((data[off] >= 0x90 && data[off] <= 0x9f) || data[off] == 0xdc || data[off] == 0xdd)) {
            if (fns_at == 0 && str_is(data + key_at, key_len, "functions"))
                at = &fns_at, stop = &fns_end;
            else if (segs_at == 0 && str_is(data + key_at, key_len, "segments"))
                at = &segs_at, stop = &segs_end;
        }
        if (at != NULL) {
            *at = off;
            *stop = off + used;
            skeleton[skel_len++] = 0x90;
        } else {
            memcpy(skeleton + skel_len, data + off, used);
            skel_len += used;
        }
        key_at = off;
        key_len = used;
    }
    if ((ret = unpack_entry(skeleton, skel_len, &used, &msg, why)) != 0)
        goto out;
    ret = -EBADMSG;
    const msgpack_object *root = &msg.data;
    *why = "not a funcmond state file";
    if (get_str(root, "format", format, sizeof(format)) || strcmp(format, FORMAT) != 0)
        goto out;
    *why = "unsupported version";
    if (get_u64(root, "version", &version) || version != VERSION)
        goto out;
    *why = "malformed";
    if (get_u64_array(root, "duration_bounds_ns", dbn, FUNCMOND_MAX_BUCKETS, &ndbn) ||
        get_u64_array(root, "memory_bounds", mbn, FUNCMOND_MAX_BUCKETS, &nmbn) || fns_at == 0 || segs_at == 0 ||
        get(root, "functions", MSGPACK_OBJECT_ARRAY) == NULL || get(root, "segments", MSGPACK_OBJECT_ARRAY) == NULL ||
        (counters = get(root, "counters", MSGPACK_OBJECT_MAP)) == NULL)
        goto out;
    struct funcmond_counters c = {0};
    uint64_t folds;
    if (get_u64(counters, "records", &c.records) || get_u64(counters, "dropped", &c.dropped) ||
        get_u64(counters, "bad_records", &c.bad_records) || get_u64(counters, "lost", &c.lost) ||
        get_u64(counters, "overflow_folds", &folds))
        goto out;
    int same_dur = same_bounds(dbn, ndbn, d->agg.dur_bounds_ns, d->agg.n_dur_bounds);
    int same_mem = same_bounds(mbn, nmbn, d->agg.mem_bounds, d->agg.n_mem_bounds);
    if (!same_dur || !same_mem)
        LOG_INFO("state file %s: bucket bounds changed; rebuilding bucket counts from the histograms", d->cfg.state_file);
    off = fns_at;
    if (array_header(data, fns_end, &off, &count))
        goto out;
    for (uint64_t i = 0; i < count; i++, off += used) {
        if ((ret = unpack_entry(data + off, fns_end - off, &used, &entry, why)) != 0)
            goto out;
        *why = "malformed";
        if ((ret = load_function(d, &entry.data, same_dur, same_mem)) != 0)
            goto out;
    }
    ret = -EBADMSG;
    off = segs_at;
    if (array_header(data, segs_end, &off, &count))
        goto out;
    *why = "more segments than funcmond keeps";
    ret = -E2BIG;
    if (count > MAX_SEGMENTS)
        goto out;
    *why = "malformed";
    ret = -ENOMEM;
    struct funcmond_restore *r = calloc(1, sizeof(*r));
    if (r == NULL || (count && (r->segs = calloc(count, sizeof(*r->segs))) == NULL)) {
        free(r);
        goto out;
    }
    d->restore = r;
    uint64_t restore_mem = 0;
    for (uint32_t i = 0; i < count; i++, r->n++, off += used) {
        if ((ret = unpack_entry(data + off, segs_end - off, &used, &entry, why)) != 0)
            goto out;
        /* What load_segment will allocate, added up before it does. */
        const msgpack_object *t = get(&entry.data, "tails", MSGPACK_OBJECT_ARRAY);
        const msgpack_object *sp = get(&entry.data, "spill", MSGPACK_OBJECT_ARRAY);
        restore_mem += (t != NULL ? t->via.array.size * sizeof(*r->segs[i].tails) : 0) +
                       (sp != NULL ? sp->via.array.size * sizeof(*r->segs[i].spill) : 0);
        *why = "more segment detail than funcmond keeps";
        ret = -E2BIG;
        if (restore_mem > MAX_RESTORE_MEM)
            goto out;
        *why = "malformed";
        if ((ret = load_segment(&entry.data, &r->segs[i])) != 0) {
            r->n++;
            goto out;
        }
    }
    d->counters.records += c.records;
    d->counters.dropped += c.dropped;
    d->counters.bad_records += c.bad_records;
    d->counters.lost += c.lost;
    d->agg.overflow_folds += folds;
    ret = 0;
out:
    free(skeleton);
    msgpack_unpacked_destroy(&entry);
    msgpack_unpacked_destroy(&msg);
    return ret;
}

static void
reset_aggregate(struct funcmond *d)
{
    funcmond_agg_free(&d->agg);
    funcmond_agg_init(&d->agg, &d->cfg);
    free_restore(d->restore);
    d->restore = NULL;
    memset(&d->counters, 0, sizeof(d->counters));
}

int
funcmond_snapshot_parse(struct funcmond *d, const void *image, size_t len, const char **why)
{
    int ret = load_state(d, image, len, why);
    if (ret != 0)
        reset_aggregate(d);
    return ret;
}

/* Refuses a state file that is not a regular file. funcmond does not start: the setting is
 * wrong, and neither reading it (a FIFO blocks the open, a device may act on it) nor moving
 * it aside (as root, STATE_FILE=/dev/null would move /dev/null) is right. */
static int
refuse(const char *path, mode_t mode)
{
    LOG_ERROR("SIDECAR.STATE_FILE %s is %s, not a regular file: not starting (the file is left as it is)", path,
              funcmond_file_kind(mode));
    return -EINVAL;
}

int
funcmond_snapshot_load(struct funcmond *d)
{
    const char *path = d->cfg.state_file, *why = NULL;
    struct stat st;
    char *data = NULL, too_big[64];

    if (path[0] == '\0')
        return 0;
    if (stat(path, &st) != 0) { /* looked at before it is opened */
        if (errno == ENOENT)
            LOG_INFO("state file %s not found: starting fresh", path);
        else
            LOG_WARN("state file %s: %s; starting fresh", path, strerror(errno));
        return 0;
    }
    if (!S_ISREG(st.st_mode))
        return refuse(path, st.st_mode);
    /* O_NONBLOCK: had it become a FIFO since, open would not wait either; fstat tells. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        LOG_WARN("state file %s: %s; starting fresh", path, strerror(errno));
        return 0;
    }
    if (fstat(fd, &st) != 0) {
        LOG_WARN("state file %s: %s; starting fresh", path, strerror(errno));
        close(fd);
        return 0;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return refuse(path, st.st_mode);
    }
    if ((uint64_t)st.st_size > MAX_FILE) {
        snprintf(too_big, sizeof(too_big), "larger than %llu MiB", MAX_FILE >> 20);
        why = too_big; /* not read: what it would cost is the point */
    } else if ((data = malloc((size_t)st.st_size + 1)) == NULL) {
        close(fd);
        return -ENOMEM;
    } else {
        size_t got = 0;
        ssize_t n;
        while (got < (size_t)st.st_size && (n = read(fd, data + got, (size_t)st.st_size - got)) > 0)
            got += (size_t)n;
        if (got != (size_t)st.st_size)
            why = "short read";
        else if (funcmond_snapshot_parse(d, data, got, &why) == 0)
            why = NULL;
    }
    close(fd);
    free(data);
    if (why == NULL) {
        LOG_INFO("state file %s: %u functions, %llu records restored", path, d->agg.n_fns, (unsigned long long)d->counters.records);
        return 0;
    }
    char aside[FUNCMOND_PATH_MAX + 64];
    snprintf(aside, sizeof(aside), "%s.corrupt-%lld", path, (long long)time(NULL));
    /* Only a regular file (or a symlink, itself) is moved aside, even if the name was
     * given to something else while we read. */
    if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
        LOG_WARN("state file %s: %s; now %s, left as it is, starting fresh", path, why, funcmond_file_kind(st.st_mode));
    else if (rename(path, aside) == 0)
        LOG_WARN("state file %s: %s; kept aside as %s, starting fresh", path, why, aside);
    else
        LOG_WARN("state file %s: %s; cannot set it aside (%s), starting fresh", path, why, strerror(errno));
    return 0;
}

/* The restore entry of p's segment, or NULL. */
static struct restore_segment *
find_restore(const struct funcmond *d, const struct funcmond_process *p)
{
    const struct funcmond_restore *r = d->restore;
    for (uint32_t i = 0; r != NULL && i < r->n; i++)
        if (same_segment(&r->segs[i], p))
            return &r->segs[i];
    return NULL;
}

/* The restore entry of p's segment, added (with n_tails 0) if there is none; NULL when
 * memory ran out or the list is full of segments whose files still exist. */
static struct restore_segment *
restore_entry(struct funcmond *d, const struct funcmond_process *p)
{
    struct funcmond_restore *r = d->restore;
    struct restore_segment *found = find_restore(d, p);
    if (found != NULL)
        return found;
    if (r == NULL && (r = d->restore = calloc(1, sizeof(*r))) == NULL)
        return NULL;
    if (r->n >= MAX_SEGMENTS)
        prune_restore(d);
    if (r->n >= MAX_SEGMENTS)
        return NULL;
    struct restore_segment *segs = realloc(r->segs, (r->n + 1) * sizeof(*segs));
    if (segs == NULL)
        return NULL;
    r->segs = segs;
    struct restore_segment *s = memset(&segs[r->n], 0, sizeof(*s));
    if ((s->tails = calloc(1, sizeof(*s->tails))) == NULL || (s->spill = calloc(1, sizeof(*s->spill))) == NULL) {
        free(s->tails);
        return NULL;
    }
    snprintf(s->name, sizeof(s->name), "%s", p->shm_name);
    s->pid = p->pid;
    s->start_time = p->proc_start_time;
    r->n++;
    return s;
}

/* Remembers where p's rings stand now, as if the state file had said so: a segment
 * attached again in this run then counts nothing twice. Returns 0, or -ENOMEM when it
 * could not (out of memory, or no entry for p: the list is full of segments whose files
 * still exist). */
static int
remember_positions(struct funcmond *d, const struct funcmond_process *p, struct restore_segment *s)
{
    uint32_t n = p->c.geo.max_threads;
    if (s == NULL && (s = restore_entry(d, p)) == NULL)
        return -ENOMEM;
    if (s->n_tails < n) {
        uint64_t *tails = realloc(s->tails, n * sizeof(*tails));
        if (tails == NULL)
            return -ENOMEM;
        memset(tails + s->n_tails, 0, (n - s->n_tails) * sizeof(*tails));
        s->tails = tails;
        s->n_tails = n;
    }
    for (uint32_t k = 0; k < n; k++)
        if (p->c.rings[k].tail > s->tails[k])
            s->tails[k] = p->c.rings[k].tail;
    return 0;
}

void
funcmond_snapshot_remember_process(struct funcmond *d, const struct funcmond_process *p)
{
    if (d->cfg.state_file[0] == '\0')
        return;
    struct restore_segment *s = restore_entry(d, p);
    if (s == NULL || remember_positions(d, p, s) != 0) {
        LOG_WARN("%s: out of memory to remember what was counted from it; attached again, it would count that as lost",
                 p->shm_name);
        return;
    }
    /* Drops and spill counters as counted now: attached again, they are not counted twice. */
    uint32_t count = p->c.sites_known, n_spill = 0;
    for (uint32_t k = 0; k < count; k++)
        n_spill += site_spilled(p, k);
    struct restore_spill *spill = calloc(n_spill ? n_spill : 1, sizeof(*spill));
    if (spill == NULL)
        return;
    for (uint32_t k = 0, i = 0; k < count; k++)
        if (site_spilled(p, k))
            spill_of(p, k, &spill[i++]);
    free(s->spill);
    s->spill = spill;
    s->n_spill = n_spill;
    s->dropped = p->dropped_seen;
}

/* Takes over what the state file said was counted from one of p's sites. Without the
 * memory for its buckets, they are counted again from zero as far as its calls allow
 * (rather than the process not being attached). */
static void
take_over_spill(struct funcmond_process *p, const struct restore_spill *sp)
{
    uint64_t site = sp->site;
    if (site >= p->c.geo.max_sites)
        return;
    p->spill_calls_seen[site] = sp->calls;
    p->spill_errors_seen[site] = sp->errors;
    p->spill_client_errors_seen[site] = sp->client_errors;
    p->spill_ticks_seen[site] = sp->ticks;
    if (!sp->has_buckets)
        return;
    struct funcmond_spill_buckets_seen *b = p->spill_buckets_seen[site];
    if (b == NULL && (b = p->spill_buckets_seen[site] = calloc(1, sizeof(*b))) == NULL)
        return;
    b->credited = sp->buckets_credited;
    memcpy(b->seen, sp->buckets, sizeof(b->seen));
}

void
funcmond_snapshot_restore_process(struct funcmond *d, struct funcmond_process *p)
{
    /* Without a state file nothing continues across a restart: nothing to restore, and
     * nothing to call lost. */
    if (d->cfg.state_file[0] == '\0')
        return;
    struct restore_segment *s = find_restore(d, p);
    if (s != NULL) {
        p->dropped_seen = s->dropped;
        for (uint32_t k = 0; k < s->n_spill; k++)
            take_over_spill(p, &s->spill[k]);
    }
    /* Records between the saved position (0 for a segment in no state file: a client that
     * came after the last write) and where the last reader stopped were consumed but never
     * saved: their detail is gone; count them. The spill counters and drops of such a
     * client were never saved either, and are counted from zero again. A ring whose
     * positions are out of range is never read, and its claims count nothing. */
    uint64_t lost = 0;
    for (uint32_t k = 0; k < p->c.geo.max_threads; k++) {
        uint64_t saved = s != NULL && k < s->n_tails ? s->tails[k] : 0, now_tail = p->c.rings[k].tail;
        if (!p->c.rings[k].bad && now_tail > saved)
            lost += now_tail - saved;
    }
    if (lost != 0) {
        d->counters.lost += lost;
        LOG_WARN("%s: %llu records were consumed after the last state file write and are lost", p->shm_name,
                 (unsigned long long)lost);
    }
    if (s != NULL || lost != 0)
        (void)remember_positions(d, p, s);
}

void
funcmond_snapshot_free(struct funcmond *d)
{
    free_restore(d->restore);
    d->restore = NULL;
}
