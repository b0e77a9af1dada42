/*
 * test_idle_threads_memory.c - idle threads hold next to nothing (DESIGN §2, protocol 2).
 *
 * 500 threads each make one call and then wait, alive, until one busy thread has made
 * 200,000 calls; the busy thread starts last, after every idle thread holds whatever its
 * one call took. With default settings the segment must be no larger than the first
 * protocol's default (34,639,872 bytes), every one of the 200,500 calls must be counted by
 * a real funcmond, and every one of the busy thread's calls recorded (none dropped): the
 * memory follows the backlog, not the thread count.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "funcmon.h"
#include "funcmond_proc.h"
#include "harness.h"

#define IDLE_THREADS 500
#define BUSY_CALLS 200000
#define SERVICE "idle"
#define PROTOCOL_1_SEGMENT_BYTES 34639872ll /* its default segment: 64 rings of 8,192 records and the rest */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static int idle_called, busy_done;

static void *
idle_thread(void *arg)
{
    (void)arg;
    struct funcmon_call c = funcmon_begin(FUNCMON_SITE("idle_call", "idle"));
    funcmon_end(&c, 0);
    pthread_mutex_lock(&lock);
    idle_called++;
    pthread_cond_broadcast(&changed);
    while (!busy_done)
        pthread_cond_wait(&changed, &lock);
    pthread_mutex_unlock(&lock);
    return NULL;
}

static void *
busy_thread(void *arg)
{
    (void)arg;
    uint32_t site = FUNCMON_SITE("busy_call", "idle");
    for (int i = 0; i < BUSY_CALLS; i++) {
        struct funcmon_call c = funcmon_begin(site);
        funcmon_end(&c, 0);
    }
    return NULL;
}

int
main(void)
{
    const char *prefix = harness_private_prefix();
    struct funcmond_proc sidecar;
    pthread_t idle[IDLE_THREADS], busy;
    pthread_attr_t attr;
    char path[300];
    struct stat st;

    CHECK_EQ(funcmond_proc_start_client(&sidecar, FUNCMOND, prefix, SERVICE), 0); /* default settings */

    CHECK_EQ(pthread_attr_init(&attr), 0);
    CHECK_EQ(pthread_attr_setstacksize(&attr, 256 * 1024), 0);
    for (int i = 0; i < IDLE_THREADS; i++)
        CHECK_EQ(pthread_create(&idle[i], &attr, idle_thread, NULL), 0);
    pthread_mutex_lock(&lock);
    while (idle_called < IDLE_THREADS)
        pthread_cond_wait(&changed, &lock);
    pthread_mutex_unlock(&lock);
    CHECK_EQ(pthread_create(&busy, &attr, busy_thread, NULL), 0);
    CHECK_EQ(pthread_join(busy, NULL), 0);

    /* While all 501 threads are alive. */
    snprintf(path, sizeof(path), "/dev/shm%s", funcmon_segment_name());
    CHECK_EQ(stat(path, &st), 0);

    pthread_mutex_lock(&lock);
    busy_done = 1;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < IDLE_THREADS; i++)
        CHECK_EQ(pthread_join(idle[i], NULL), 0);
    pthread_attr_destroy(&attr);

    uint64_t busy_seen, idle_seen, dropped = 0;
    const char *source = "none";
    int busy_waited = funcmond_wait_calls(&sidecar, SERVICE, "busy_call", BUSY_CALLS, 60, &busy_seen);
    int idle_waited = funcmond_wait_calls(&sidecar, SERVICE, "idle_call", IDLE_THREADS, 60, &idle_seen);
    usleep(200000); /* drop counters are read by funcmond's next passes */
    CHECK_EQ(funcmond_dropped(&sidecar, SERVICE, "idle", "busy_call", &dropped, &source), 0);
    printf("test_idle_threads_memory: segment=%lld bytes (bound %lld) busy call_count=%llu idle call_count=%llu "
           "busy dropped=%llu (from %s)\n",
           (long long)st.st_size, PROTOCOL_1_SEGMENT_BYTES, (unsigned long long)busy_seen, (unsigned long long)idle_seen,
           (unsigned long long)dropped, source);
    CHECK_LE(st.st_size, PROTOCOL_1_SEGMENT_BYTES);
    CHECK_EQ(busy_waited, 0);
    CHECK_EQ(idle_waited, 0);
    CHECK_EQ(busy_seen, BUSY_CALLS);
    CHECK_EQ(idle_seen, IDLE_THREADS);
    CHECK_EQ(dropped, 0);

    funcmon_shutdown();
    int status = funcmond_proc_stop(&sidecar);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return 0;
}
