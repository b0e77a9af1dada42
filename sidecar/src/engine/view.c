/*
 * view.c - publishing read-only views of the aggregate under ck_epoch, and the keys of the
 * functions in /debug/profiles (see view.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "publish.h"

/* ck_epoch orders its sections with ck_pr, which ThreadSanitizer does not see. Under it,
 * the end of every read section releases, and a deferred free acquires, one address: the
 * happens-before that the epoch's grace period guarantees, made visible to the tool. */
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define EPOCH_READ_DONE(addr) __tsan_release(addr)
#define EPOCH_FREEING(addr) __tsan_acquire(addr)
#else
#define EPOCH_READ_DONE(addr) ((void)(addr))
#define EPOCH_FREEING(addr) ((void)(addr))
#endif

#define PUBLISH_BUSY_NS 100000000ull /* at most this often while figures change */
#define PUBLISH_IDLE_NS 1000000000ull

struct funcmond_reader {
    ck_epoch_record_t record; /* first: ck_epoch_recycle hands back this address */
    ck_epoch_section_t section;
    struct funcmond_views *vs;
    struct funcmond_reader *next_allocated;
};

struct funcmond_views {
    ck_epoch_t epoch;
    ck_epoch_record_t writer; /* the drain thread's record: it defers frees through it */
    struct funcmond_view *current;
    pthread_mutex_t readers_lock;    /* registration only, never on a read */
    struct funcmond_reader *readers; /* every reader allocated, freed at close */
};

static void
free_view(struct funcmond_view *v)
{
    if (v == NULL)
        return;
    for (uint32_t i = 0; i < v->n_procs; i++) {
        free(v->procs[i].threads);
        free(v->procs[i].stacks);
    }
    free(v->fns);
    free(v->procs);
    free(v);
}

static int epoch_sync; /* the address EPOCH_READ_DONE and EPOCH_FREEING meet at */

static void
on_retired(ck_epoch_entry_t *entry)
{
    EPOCH_FREEING(&epoch_sync);
    free_view((struct funcmond_view *)((char *)entry - offsetof(struct funcmond_view, epoch_entry)));
}

/* Calls in flight now per function, from the live clients' in-flight stacks. */
static void
count_inflight(const struct funcmond *d, struct funcmond_fn_view *fns, uint32_t n_fns)
{
    struct funcmon_slot_info si;
    for (const struct funcmond_process *p = d->procs; p != NULL; p = p->next) {
        if (p->state != FUNCMOND_PROC_LIVE || p->detaching)
            continue;
        const uint32_t *in_use;
        uint32_t n = funcmon_consumer_slots_in_use(&p->c, &in_use);
        for (uint32_t j = 0; j < n; j++) {
            if (funcmon_consumer_slot_depth(&p->c, in_use[j]) == 0 || funcmon_consumer_slot(&p->c, in_use[j], &si) != 0 ||
                si.state != FUNCMON_SLOT_ACTIVE)
                continue;
            for (uint32_t k = 0; k < si.entries; k++) {
                uint32_t fn;
                if (funcmond_ingest_site_fn(p, si.inflight[k].site, &fn) == 0 && fn < n_fns)
                    fns[fn].inflight++;
            }
        }
    }
}

static uint64_t
window_seconds(const struct funcmond *d, uint64_t now_real, int slots)
{
    uint64_t up = now_real > d->start_real_ns ? (now_real - d->start_real_ns) / 1000000000ull : 0;
    uint64_t span = (uint64_t)slots * (FUNCMOND_WINDOW_SLOT_NS / 1000000000ull);
    return up < 1 ? 1 : (up < span ? up : span);
}

static void
build_function(const struct funcmond *d, const struct funcmond_function *f, struct funcmond_fn_view *v, uint64_t now_real)
{
    const struct funcmond_aggregate *agg = &d->agg;
    struct funcmond_hist w;
    uint64_t calls, errors, cum;

    memset(v, 0, sizeof(*v));
    memcpy(v->service, f->service, sizeof(v->service));
    memcpy(v->package, f->package, sizeof(v->package));
    memcpy(v->name, f->name, sizeof(v->name));
    v->overflow = f->overflow;
    v->calls = f->calls;
    v->errors = f->errors;
    v->cancelled = f->cancelled;
    v->deadline_exceeded = f->deadline_exceeded;
    v->client_errors = f->client_errors;
    v->dropped = f->dropped;
    v->records = f->dur.count;
    v->total_ns = f->total_ns;
    v->min_ns = f->dur.count != 0 ? f->min_ns : 0;
    v->max_ns = f->max_ns;
    v->avg_ns = f->dur.count != 0 ? f->total_ns / f->dur.count : 0;
    struct funcmond_hist dur = funcmond_agg_durations(f);
    v->p50_ns = funcmond_hist_quantile(&dur, 0.5);
    v->p90_ns = funcmond_hist_quantile(&dur, 0.9);
    v->p99_ns = funcmond_hist_quantile(&dur, 0.99);
    v->p999_ns = funcmond_hist_quantile(&dur, 0.999);
    v->total_bytes = f->total_bytes;
    v->max_bytes = f->max_bytes;
    v->freed_bytes = f->freed_bytes;
    v->mem_records = f->mem.count;
    v->last_real_ns = f->last_real_ns;
    cum = 0;
    for (uint32_t i = 0; i < agg->n_dur_bounds; i++)
        v->dur_cum[i] = cum += f->dur_buckets[i];
    cum = 0;
    for (uint32_t i = 0; i < agg->n_mem_bounds; i++)
        v->mem_cum[i] = cum += f->mem_buckets[i];

    funcmond_hist_init(&w, FUNCMOND_WINDOW_SUB_BITS);
    funcmond_agg_window(agg, f, FUNCMOND_WINDOW_1M_SLOTS, &calls, &errors, &w);
    v->rate_1m = (double)calls / (double)window_seconds(d, now_real, FUNCMOND_WINDOW_1M_SLOTS);
    v->error_rate_1m = calls != 0 ? (double)errors / (double)calls : 0;
    v->p50_1m_ns = funcmond_hist_quantile(&w, 0.5);
    v->p99_1m_ns = funcmond_hist_quantile(&w, 0.99);
    funcmond_hist_free(&w);
    funcmond_hist_init(&w, FUNCMOND_WINDOW_SUB_BITS);
    funcmond_agg_window(agg, f, FUNCMOND_WINDOW_SLOTS, &calls, &errors, &w);
    v->rate_5m = (double)calls / (double)window_seconds(d, now_real, FUNCMOND_WINDOW_SLOTS);
    v->error_rate_5m = calls != 0 ? (double)errors / (double)calls : 0;
    v->p50_5m_ns = funcmond_hist_quantile(&w, 0.5);
    v->p99_5m_ns = funcmond_hist_quantile(&w, 0.99);
    funcmond_hist_free(&w);
}

/* True while a function has calls inside the 5-minute window: its rates still move. */
static int
window_active(const struct funcmond_aggregate *agg, const struct funcmond_function *f)
{
    for (int i = 0; i < FUNCMOND_WINDOW_SLOTS; i++)
        if (f->window[i].calls != 0 && f->window[i].id + FUNCMOND_WINDOW_SLOTS + 1 > agg->now_slot)
            return 1;
    return 0;
}

static void
build_process(const struct funcmond_process *p, struct funcmond_proc_view *v)
{
    struct funcmon_slot_info si;
    memset(v, 0, sizeof(*v));
    v->pid = p->pid;
    memcpy(v->service, p->service, sizeof(v->service));
    memcpy(v->segment, p->shm_name, sizeof(v->segment));
    v->state = p->state;
    v->attached_real_ns = p->attached_real_ns;
    v->ended_real_ns = p->ended_real_ns;
    v->records = p->records;
    v->dropped = p->dropped_seen;
    v->bad_records = p->c.bad_records;
    v->rings_total = p->c.geo.max_threads;
    v->pool_chunks = p->c.geo.pool_chunks;
    v->pool_chunks_used = funcmon_consumer_pool_used(&p->c);
    v->sites = p->c.sites_known;
    v->fallback_calls = __atomic_load_n(&p->c.hdr->fallback_calls, __ATOMIC_RELAXED);
    v->rt = p->rt;
    v->stacks = funcmond_stacks_copy(&p->stacks, &v->n_stacks);
    /* One copy of each slot in use: counted if it has a thread, listed for a live client
     * (without memory for the list, counted only). */
    const uint32_t *in_use;
    uint32_t n_in_use = funcmon_consumer_slots_in_use(&p->c, &in_use);
    if (p->state == FUNCMOND_PROC_LIVE && !p->detaching && n_in_use != 0)
        v->threads = calloc(n_in_use, sizeof(*v->threads));
    for (uint32_t j = 0; j < n_in_use; j++) {
        if (funcmon_consumer_slot(&p->c, in_use[j], &si) != 0 || si.state != FUNCMON_SLOT_ACTIVE)
            continue;
        v->rings_active++;
        if (v->threads == NULL)
            continue;
        struct funcmond_thread_view *t = &v->threads[v->n_threads++];
        t->tid = si.tid;
        memcpy(t->name, si.thread_name, sizeof(t->name));
        t->depth = si.depth;
        for (uint32_t k = 0; k < si.entries; k++) {
            uint32_t fn;
            struct funcmond_call_view *c = &t->calls[t->n_calls++];
            c->fn = funcmond_ingest_site_fn(p, si.inflight[k].site, &fn) == 0 ? fn : UINT32_MAX;
            c->depth = k;
            c->start_real_ns = funcmon_clock_real_ns(&p->clk, si.inflight[k].start);
        }
    }
}

static struct funcmond_view *
build_view(const struct funcmond *d, const struct funcmond_view *prev)
{
    const struct funcmond_aggregate *agg = &d->agg;
    uint64_t now_real = funcmond_real_ns();
    struct funcmond_view *v = calloc(1, sizeof(*v));
    uint32_t n_procs = 0;

    for (const struct funcmond_process *p = d->procs; p != NULL; p = p->next)
        n_procs++;
    if (v == NULL || (agg->n_fns && (v->fns = calloc(agg->n_fns, sizeof(*v->fns))) == NULL) ||
        (n_procs && (v->procs = calloc(n_procs, sizeof(*v->procs))) == NULL)) {
        free_view(v);
        return NULL;
    }
    v->generation = agg->generation;
    v->published_real_ns = now_real;
    v->start_real_ns = d->start_real_ns;
    v->event_loop = funcmond_loop_event_loop(d);
    v->n_fns = agg->n_fns;
    for (uint32_t id = 0; id < agg->n_fns; id++) {
        const struct funcmond_function *f = agg->fns[id];
        /* Unchanged since the last view and outside every window: copy, do not recompute. */
        if (prev != NULL && id < prev->n_fns && f->changed < agg->generation && !window_active(agg, f)) {
            v->fns[id] = prev->fns[id];
            v->fns[id].inflight = 0;
        } else {
            build_function(d, f, &v->fns[id], now_real);
        }
    }
    count_inflight(d, v->fns, v->n_fns);
    for (const struct funcmond_process *p = d->procs; p != NULL; p = p->next)
        build_process(p, &v->procs[v->n_procs++]);
    v->counters = d->counters;
    v->functions_overflow = agg->overflow_folds;
    v->clients = d->clients;
    v->n_dur_bounds = agg->n_dur_bounds;
    v->n_mem_bounds = agg->n_mem_bounds;
    memcpy(v->dur_bounds_s, d->cfg.duration_buckets, sizeof(v->dur_bounds_s));
    memcpy(v->mem_bounds, d->cfg.memory_buckets, sizeof(v->mem_bounds));
    return v;
}

int
funcmond_view_init(struct funcmond *d)
{
    struct funcmond_views *vs = calloc(1, sizeof(*vs));
    if (vs == NULL)
        return -ENOMEM;
    ck_epoch_init(&vs->epoch);
    ck_epoch_register(&vs->epoch, &vs->writer, NULL);
    pthread_mutex_init(&vs->readers_lock, NULL);
    d->views = vs;
    /* An empty first view, so readers always have one. */
    vs->current = build_view(d, NULL);
    if (vs->current == NULL)
        return -ENOMEM;
    d->agg.generation++;
    return 0;
}

int
funcmond_view_due(const struct funcmond *d, uint64_t now, int force)
{
    uint64_t since = now - d->last_publish_mono_ns;
    return force || (d->agg.dirty && since >= PUBLISH_BUSY_NS) || since >= PUBLISH_IDLE_NS;
}

void
funcmond_view_maybe_publish(struct funcmond *d, uint64_t now, int force)
{
    struct funcmond_views *vs = d->views;

    ck_epoch_poll(&vs->writer); /* frees the views no reader can see any more */
    if (!funcmond_view_due(d, now, force))
        return;
    struct funcmond_view *old = vs->current;
    struct funcmond_view *v = build_view(d, old);
    if (v == NULL)
        return; /* out of memory: readers keep the previous view */
    /* Pairs with the readers' acquire load in funcmond_view_begin. */
    __atomic_store_n(&vs->current, v, __ATOMIC_RELEASE);
    d->agg.generation++; /* changes from now on are newer than this view */
    d->agg.dirty = 0;
    d->last_publish_mono_ns = now;
    ck_epoch_call(&vs->writer, &old->epoch_entry, on_retired);
}

void
funcmond_view_close(struct funcmond *d)
{
    struct funcmond_views *vs = d->views;
    if (vs == NULL)
        return;
    ck_epoch_barrier(&vs->writer); /* runs every deferred free */
    free_view(vs->current);
    while (vs->readers != NULL) {
        struct funcmond_reader *r = vs->readers;
        vs->readers = r->next_allocated;
        free(r);
    }
    pthread_mutex_destroy(&vs->readers_lock);
    free(vs);
    d->views = NULL;
}

struct funcmond_reader *
funcmond_view_reader(struct funcmond_views *vs)
{
    struct funcmond_reader *r;
    pthread_mutex_lock(&vs->readers_lock);
    /* A record given up by an earlier reader is reused; ck keeps it in its list. */
    ck_epoch_record_t *rec = ck_epoch_recycle(&vs->epoch, NULL);
    if (rec != NULL) {
        r = (struct funcmond_reader *)rec;
    } else if ((r = calloc(1, sizeof(*r))) != NULL) {
        r->vs = vs;
        r->next_allocated = vs->readers;
        vs->readers = r;
        ck_epoch_register(&vs->epoch, &r->record, NULL);
    }
    pthread_mutex_unlock(&vs->readers_lock);
    return r;
}

void
funcmond_view_reader_free(struct funcmond_reader *r)
{
    if (r != NULL)
        ck_epoch_unregister(&r->record); /* its memory stays for reuse, freed at close */
}

const struct funcmond_view *
funcmond_view_begin(struct funcmond_reader *r)
{
    ck_epoch_begin(&r->record, &r->section);
    /* Pairs with the drain thread's release store in funcmond_view_maybe_publish. */
    return __atomic_load_n(&r->vs->current, __ATOMIC_ACQUIRE);
}

void
funcmond_view_end(struct funcmond_reader *r)
{
    EPOCH_READ_DONE(&epoch_sync);
    ck_epoch_end(&r->record, &r->section);
}

/* ---- profile keys ---- */

enum key_form { KEY_NAME, KEY_PACKAGE, KEY_SERVICE };

/* Appends s to dst at *len, with every byte of `special` as %XX. */
static void
put_escaped(char *dst, size_t *len, const char *s, const char *special)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s != '\0'; s++) {
        if (strchr(special, *s) != NULL) {
            dst[(*len)++] = '%';
            dst[(*len)++] = hex[(unsigned char)*s >> 4];
            dst[(*len)++] = hex[(unsigned char)*s & 15];
        } else {
            dst[(*len)++] = *s;
        }
    }
}

static char *
make_key(const struct funcmond_fn_view *f, enum key_form form)
{
    /* Each escaped byte takes three. */
    char *k = malloc(3 * sizeof(f->service) + 3 * sizeof(f->package) + sizeof(f->name) + 2);
    size_t len = 0;
    if (k == NULL)
        return NULL;
    /* The service holds no raw '/' or ':', the package no raw ':': the first '/' ends the
     * service, the first ':' after it ends the package, and the rest is the name. */
    if (form == KEY_SERVICE) {
        put_escaped(k, &len, f->service, "%/:");
        k[len++] = '/';
    }
    if (form != KEY_NAME) {
        put_escaped(k, &len, f->package, "%:");
        k[len++] = ':';
    }
    memcpy(k + len, f->name, strlen(f->name) + 1);
    return k;
}

struct key_ref {
    const char *key;
    uint32_t pos;
};

static int
key_ref_cmp(const void *a, const void *b)
{
    const struct key_ref *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c != 0 ? c : x->pos < y->pos ? -1 : x->pos > y->pos;
}

void
funcmond_view_profile_keys_free(char **keys, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        free(keys[i]);
}

int
funcmond_view_profile_keys(const struct funcmond_view *v, const uint32_t *by_name, uint32_t n, char **keys)
{
    unsigned char *form = malloc(n ? n : 1);
    struct key_ref *refs = malloc((n ? n : 1) * sizeof(*refs));
    int ret = -ENOMEM;
    memset(keys, 0, n * sizeof(*keys));
    if (form == NULL || refs == NULL)
        goto out;
    /* The form each group of one name takes. */
    for (uint32_t lo = 0, hi; lo < n; lo = hi + 1) {
        const struct funcmond_fn_view *f = &v->fns[by_name[lo]];
        int services = 0;
        for (hi = lo; hi + 1 < n && strcmp(v->fns[by_name[hi + 1]].name, f->name) == 0; hi++)
            services |= strcmp(v->fns[by_name[hi + 1]].service, f->service) != 0;
        for (uint32_t i = lo; i <= hi; i++)
            form[i] = lo == hi ? KEY_NAME : services ? KEY_SERVICE : KEY_PACKAGE;
    }
    for (uint32_t i = 0; i < n; i++)
        if ((keys[i] = make_key(&v->fns[by_name[i]], (enum key_form)form[i])) == NULL)
            goto out;
    /* Keys of the two qualified forms never meet (the name follows the first ':' in both,
     * and names differ between groups), nor do bare names; a bare name can equal a
     * qualified key. Such a name takes the service form, which may meet another bare name:
     * again until none meets. Each round qualifies at least one, so this ends. */
    for (int changed = 1; changed;) {
        changed = 0;
        for (uint32_t i = 0; i < n; i++)
            refs[i] = (struct key_ref){keys[i], i};
        qsort(refs, n, sizeof(*refs), key_ref_cmp);
        for (uint32_t i = 0; i + 1 < n; i++) {
            if (strcmp(refs[i].key, refs[i + 1].key) != 0)
                continue;
            for (uint32_t k = i; k <= i + 1; k++) {
                uint32_t pos = refs[k].pos;
                if (form[pos] != KEY_NAME)
                    continue;
                char *key = make_key(&v->fns[by_name[pos]], KEY_SERVICE);
                if (key == NULL)
                    goto out;
                free(keys[pos]);
                keys[pos] = key;
                form[pos] = KEY_SERVICE;
                changed = 1;
            }
        }
    }
    ret = 0;
out:
    if (ret != 0)
        funcmond_view_profile_keys_free(keys, n);
    free(form);
    free(refs);
    return ret;
}
