/*
 * test_thread_crowd_records.c - 1,000 threads with default settings: every call recorded
 * (DESIGN §7, protocol 2).
 *
 * The claim is about threads that live at the same time, so all 1,000 are started before
 * any calls, make their 1,000 calls each, and wait until every thread has made its calls
 * before any exits: no thread can reuse a buffer another one gave back. They call in waves
 * of 50 threads at full speed; the next wave starts once the last one is done and funcmond
 * has read most of what it wrote. A thousand threads runnable at once on a two-core
 * machine leave funcmond (one more thread among them) no turn until all are done, and
 * 1,000,000 records do not fit in the pool (458,752): what this test judges is that each
 * of a thousand live threads has a slot and every call gets its record; how much the pool
 * absorbs while funcmond cannot run is what the burst and stop benchmarks measure. A real funcmond
 * with its default settings drains them; the test judges only what funcmond serves
 * (call_count, and the calls whose record never reached it) and the client's count of
 * threads that found no room in the segment (4,096 thread slots by default).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "funcmon.h"
#include "funcmon/layout.h"
#include "funcmond_proc.h"
#include "harness.h"

#define THREADS 1000
#define CALLS_PER_THREAD 1000
#define WAVE 50
#define SERVICE "crowd"

static pthread_barrier_t all_started, all_called;
static pthread_mutex_t wave_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wave_cond = PTHREAD_COND_INITIALIZER;
static int waves_released, threads_done;

static void *
caller(void *arg)
{
    int wave = (int)(intptr_t)arg / WAVE;
    uint32_t site = FUNCMON_SITE("crowd_call", "crowd");
    struct funcmon_call first = funcmon_begin(site); /* every thread holds its slot from here */
    funcmon_end(&first, 0);
    pthread_barrier_wait(&all_started);
    pthread_mutex_lock(&wave_lock);
    while (waves_released <= wave)
        pthread_cond_wait(&wave_cond, &wave_lock);
    pthread_mutex_unlock(&wave_lock);
    for (int i = 1; i < CALLS_PER_THREAD; i++) {
        struct funcmon_call c = funcmon_begin(site);
        funcmon_end(&c, 0);
    }
    pthread_mutex_lock(&wave_lock);
    threads_done++;
    pthread_cond_broadcast(&wave_cond);
    pthread_mutex_unlock(&wave_lock);
    pthread_barrier_wait(&all_called);
    return NULL;
}

/* This process's segment header, mapped read-only, not opened as a consumer: that would
 * mark the segment as read by this process, and funcmond is its consumer. */
static const struct funcmon_shm_header *
own_header(void)
{
    int fd = shm_open(funcmon_segment_name(), O_RDONLY | O_CLOEXEC, 0);
    CHECK_GE(fd, 0);
    void *p = mmap(NULL, sizeof(struct funcmon_shm_header), PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    CHECK(p != MAP_FAILED);
    return p;
}

/* Waits (up to 10 s) until the pool holds no more than each thread's current chunk and
 * `spare` chunks more: funcmond has read and given back the rest. */
static void
wait_pool_read(const struct funcmon_shm_header *hdr, uint64_t spare)
{
    for (int i = 0; i < 10000; i++) {
        uint64_t taken = __atomic_load_n(&hdr->chunks_taken, __ATOMIC_RELAXED);
        uint64_t returned = __atomic_load_n(&hdr->chunks_returned, __ATOMIC_RELAXED);
        if (taken - returned <= THREADS + spare)
            return;
        usleep(1000);
    }
    CHECK(!"funcmond did not read the pool back within 10 s");
}

int
main(void)
{
    const char *prefix = harness_private_prefix();
    struct funcmond_proc sidecar;
    pthread_t threads[THREADS];
    pthread_attr_t attr;

    CHECK_EQ(funcmond_proc_start_client(&sidecar, FUNCMOND, prefix, SERVICE), 0); /* default settings */

    CHECK_EQ(pthread_barrier_init(&all_started, NULL, THREADS + 1), 0);
    CHECK_EQ(pthread_barrier_init(&all_called, NULL, THREADS), 0);
    CHECK_EQ(pthread_attr_init(&attr), 0);
    CHECK_EQ(pthread_attr_setstacksize(&attr, 256 * 1024), 0); /* 1,000 default stacks would be 8 GiB */
    for (int i = 0; i < THREADS; i++)
        CHECK_EQ(pthread_create(&threads[i], &attr, caller, (void *)(intptr_t)i), 0);
    pthread_barrier_wait(&all_started); /* all alive, each with its slot */
    const struct funcmon_shm_header *hdr = own_header();
    for (int w = 0; w < THREADS / WAVE; w++) {
        pthread_mutex_lock(&wave_lock);
        waves_released = w + 1;
        pthread_cond_broadcast(&wave_cond);
        while (threads_done < (w + 1) * WAVE)
            pthread_cond_wait(&wave_cond, &wave_lock);
        pthread_mutex_unlock(&wave_lock);
        wait_pool_read(hdr, 512);
    }
    for (int i = 0; i < THREADS; i++)
        CHECK_EQ(pthread_join(threads[i], NULL), 0);
    pthread_attr_destroy(&attr);

    const uint64_t calls = (uint64_t)THREADS * CALLS_PER_THREAD;
    uint64_t seen, dropped = 0, without_room = __atomic_load_n(&hdr->fallback_threads, __ATOMIC_RELAXED);
    const char *source = "none";
    int waited = funcmond_wait_calls(&sidecar, SERVICE, "crowd_call", calls, 60, &seen);
    usleep(200000); /* drop counters are read by funcmond's next passes */
    CHECK_EQ(funcmond_dropped(&sidecar, SERVICE, "crowd", "crowd_call", &dropped, &source), 0);
    printf("test_thread_crowd_records: %d threads x %d calls: call_count=%llu dropped=%llu (from %s) "
           "fallback_threads=%llu\n",
           THREADS, CALLS_PER_THREAD, (unsigned long long)seen, (unsigned long long)dropped, source,
           (unsigned long long)without_room);
    CHECK_EQ(waited, 0);
    CHECK_EQ(seen, calls);
    CHECK_EQ(without_room, 0);
    CHECK_EQ(dropped, 0);

    munmap((void *)hdr, sizeof(*hdr));
    funcmon_shutdown();
    int status = funcmond_proc_stop(&sidecar);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    pthread_barrier_destroy(&all_started);
    pthread_barrier_destroy(&all_called);
    return 0;
}
