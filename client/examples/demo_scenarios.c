/*
 * demo_scenarios.c - the profiled work of funcmon-demo: the scenarios of the original
 * guide's demo (a 100 ms task, a task against a deadline, a failing task, a repeated task,
 * a memory-hungry task, database, API and file operations) and the service's own business
 * logic (users and payments).
 *
 * The point of this file is to show each of funcmon's four instrumentation styles where it
 * fits best, with results a reader can predict from the code:
 *   funcmon_profile      wraps a whole function (slow_task, failing_task, find_user, ...)
 *   funcmon_profile_ctx  a function with a deadline (deadline_task, call_external_api,
 *                        charge_card): calls past it are flagged and counted as errors
 *   funcmon_begin/end    in place, around a loop body or a step (repeated_task, db_query)
 *   FUNCMON_SCOPE        around a block, ended however it is left (allocate_memory, ...)
 * The "database", "API" and "gateway" are simulated by sleeping; the file operations use a
 * real temporary file. Calls nest, so a profile's duration and bytes include its children.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <funcmon.h>

#include "demo.h"

#define MS 1000000ull /* nanoseconds */
#define US 1000ull

/* ----- helpers ----- */

static void
sleep_ns(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull), .tv_nsec = (long)(ns % 1000000000ull)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* A duration in [min_ns, max_ns). */
static uint64_t
between_ns(uint64_t min_ns, uint64_t max_ns)
{
    return min_ns + (max_ns > min_ns ? demo_random((uint32_t)((max_ns - min_ns) / US)) * US : 0);
}

uint32_t
demo_random(uint32_t bound)
{
    /* xorshift64*, one state per thread: handlers run on many threads at once. */
    static __thread uint64_t state;
    if (state == 0)
        state = (monotonic_ns() ^ ((uint64_t)gettid() << 32) ^ (uint64_t)(uintptr_t)&state) | 1;
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return bound == 0 ? 0 : (uint32_t)(((state * 0x2545F4914F6CDD1Dull) >> 32) % bound);
}

/* Works for work_ns the way a Go function selects on ctx.Done(): it stops as soon as the
 * context is cancelled or its deadline passes, and then returns that error. */
static int
work_with_context(struct funcmon_ctx *ctx, uint64_t work_ns)
{
    uint64_t end = monotonic_ns() + work_ns;
    for (;;) {
        int err = funcmon_ctx_err(ctx);
        if (err != 0)
            return err;
        uint64_t now = monotonic_ns();
        if (now >= end)
            return 0;
        uint64_t step = end - now;
        if (ctx->deadline_ns != 0 && ctx->deadline_ns > now && ctx->deadline_ns - now < step)
            step = ctx->deadline_ns - now; /* wake exactly at the deadline */
        if (step > 5 * MS)
            step = 5 * MS; /* a cancel from another thread is seen within 5 ms */
        sleep_ns(step);
    }
}

/* ----- the guide's scenarios ----- */

static int
slow_task(void *arg)
{
    (void)arg;
    sleep_ns(100 * MS);
    return 0;
}

void
demo_slow_task(struct demo_outcome *out)
{
    int failed = funcmon_profile("slow_task", DEMO_PACKAGE, slow_task, NULL) != 0;
    *out = (struct demo_outcome){.failed = failed, .value = 100, .detail = "slept 100 ms"};
}

static int
deadline_task(struct funcmon_ctx *ctx, void *arg)
{
    return work_with_context(ctx, *(uint64_t *)arg);
}

void
demo_deadline_task(struct demo_outcome *out)
{
    /* 50 ms allowed for 20-80 ms of work: about half the calls miss the deadline. */
    struct funcmon_ctx ctx;
    uint64_t work = between_ns(20 * MS, 80 * MS);
    funcmon_ctx_init(&ctx, 50 * MS);
    int err = funcmon_profile_ctx(&ctx, "deadline_task", DEMO_PACKAGE, deadline_task, &work);
    out->failed = err != 0;
    out->deadline_missed = err == FUNCMON_EDEADLINE;
    out->value = work / MS;
    out->detail = err == 0 ? "finished before the 50 ms deadline" : "deadline of 50 ms exceeded";
}

static int
failing_task(void *arg)
{
    (void)arg;
    sleep_ns(between_ns(1 * MS, 3 * MS));
    return -EIO; /* the simulated failure */
}

void
demo_failing_task(struct demo_outcome *out)
{
    int failed = funcmon_profile("failing_task", DEMO_PACKAGE, failing_task, NULL) != 0;
    *out = (struct demo_outcome){.failed = failed, .detail = "the task failed, as it always does"};
}

void
demo_repeated_task(struct demo_outcome *out)
{
    /* The same function called five times, 1 to 6 ms each: one profile, five calls, a
     * spread of durations for the histogram. */
    enum { REPEATS = 5 };
    for (int i = 0; i < REPEATS; i++) {
        struct funcmon_call call = funcmon_begin(FUNCMON_SITE("repeated_task", DEMO_PACKAGE));
        sleep_ns((uint64_t)(i + 1) * MS + between_ns(0, 1 * MS));
        funcmon_end(&call, 0);
    }
    *out = (struct demo_outcome){.value = REPEATS, .detail = "called repeated_task five times"};
}

void
demo_allocate_memory(struct demo_outcome *out)
{
    /* 1 MiB allocated, written and freed inside the call: with allocation tracking on, the
     * profile's total_memory grows by about 1 MiB per call. */
    const size_t size = 1u << 20;
    *out = (struct demo_outcome){.value = size, .detail = "allocated, used and freed 1 MiB"};
    FUNCMON_SCOPE("allocate_memory", DEMO_PACKAGE)
    {
        unsigned char *block = malloc(size);
        if (block == NULL) {
            funcmon_set_error();
            out->failed = 1;
            out->detail = "out of memory";
            break;
        }
        memset(block, 0xa5, size);
        unsigned sum = 0;
        for (size_t i = 0; i < size; i += 4096)
            sum += block[i];
        out->value = sum == (size / 4096) * 0xa5 ? size : 0;
        free(block);
    }
}

/* One simulated database statement, profiled in place; fails fail_permille times in 1000. */
static int
db_statement(uint32_t site, uint64_t min_ns, uint64_t max_ns, uint32_t fail_permille)
{
    struct funcmon_call call = funcmon_begin(site);
    sleep_ns(between_ns(min_ns, max_ns));
    int failed = demo_random(1000) < fail_permille;
    funcmon_end(&call, failed);
    return failed ? -EIO : 0;
}

void
demo_database_operations(struct demo_outcome *out)
{
    /* A transaction: connect, three queries, commit; a failed query rolls back. */
    *out = (struct demo_outcome){.detail = "connected, ran three queries, committed"};
    FUNCMON_SCOPE("database_operations", DEMO_PACKAGE)
    {
        db_statement(FUNCMON_SITE("db_connect", "database"), 500 * US, 1500 * US, 0);
        for (int i = 0; i < 3; i++) {
            if (db_statement(FUNCMON_SITE("db_query", "database"), 1 * MS, 4 * MS, 20) != 0) {
                db_statement(FUNCMON_SITE("db_rollback", "database"), 200 * US, 800 * US, 0);
                funcmon_set_error();
                out->failed = 1;
                out->detail = "a query failed, the transaction was rolled back";
                break;
            }
            out->value++;
        }
        if (!out->failed)
            db_statement(FUNCMON_SITE("db_commit", "database"), 500 * US, 2 * MS, 0);
    }
}

static int
call_external_api(struct funcmon_ctx *ctx, void *arg)
{
    (void)arg;
    /* The remote side answers in 5-40 ms; the caller allows 30 ms. */
    return work_with_context(ctx, between_ns(5 * MS, 40 * MS));
}

void
demo_api_calls(struct demo_outcome *out)
{
    *out = (struct demo_outcome){.detail = "two remote calls answered in time"};
    FUNCMON_SCOPE("api_calls", DEMO_PACKAGE)
    {
        for (int i = 0; i < 2; i++) {
            struct funcmon_ctx ctx;
            funcmon_ctx_init(&ctx, 30 * MS);
            int err = funcmon_profile_ctx(&ctx, "call_external_api", "api", call_external_api, NULL);
            if (err != 0) {
                funcmon_set_error();
                out->failed = 1;
                out->deadline_missed = err == FUNCMON_EDEADLINE;
                out->detail = "a remote call timed out after 30 ms";
                break;
            }
            out->value++;
        }
    }
}

/* Writes 64 KiB to a temporary file and reads it back; each step is its own profile. */
static int
file_operations(void *arg)
{
    enum { SIZE = 64 * 1024 };
    static const char pattern[] = "funcmon demo file operation\n";
    uint64_t *bytes = arg;
    int rc = 0;
    char *data = malloc(SIZE), *back = malloc(SIZE);
    FILE *file = tmpfile(); /* unlinked already: nothing is left behind */
    if (data == NULL || back == NULL || file == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < SIZE; i++)
        data[i] = pattern[i % (sizeof(pattern) - 1)];
    FUNCMON_SCOPE("write_file", "storage")
    {
        if (fwrite(data, 1, SIZE, file) != SIZE || fflush(file) != 0) {
            funcmon_set_error();
            rc = -EIO;
        }
    }
    if (rc != 0)
        goto out;
    rewind(file);
    FUNCMON_SCOPE("read_file", "storage")
    {
        if (fread(back, 1, SIZE, file) != SIZE || memcmp(data, back, SIZE) != 0) {
            funcmon_set_error();
            rc = -EIO;
        }
    }
    *bytes = rc == 0 ? SIZE : 0;
out:
    if (file != NULL)
        fclose(file);
    free(back);
    free(data);
    return rc;
}

void
demo_file_operations(struct demo_outcome *out)
{
    uint64_t bytes = 0;
    int err = funcmon_profile("file_operations", DEMO_PACKAGE, file_operations, &bytes);
    out->failed = err != 0;
    out->deadline_missed = 0;
    out->value = bytes;
    out->detail = err == 0 ? "wrote and read back 64 KiB" : "the temporary file could not be written or read";
}

/* ----- users ----- */

static const struct demo_user users[DEMO_USER_COUNT] = {
    {1, "Ada Lovelace", "ada@example.com"},           {2, "Alan Turing", "alan@example.com"},
    {3, "Grace Hopper", "grace@example.com"},         {4, "Edsger Dijkstra", "edsger@example.com"},
    {5, "Barbara Liskov", "barbara@example.com"},     {6, "Donald Knuth", "donald@example.com"},
    {7, "Frances Allen", "frances@example.com"},      {8, "Ken Thompson", "ken@example.com"},
    {9, "Margaret Hamilton", "margaret@example.com"}, {10, "Dennis Ritchie", "dennis@example.com"},
};

struct find_user_arg {
    unsigned long id;
    const struct demo_user *found;
};

static int
find_user(void *arg)
{
    struct find_user_arg *a = arg;
    sleep_ns(between_ns(500 * US, 2 * MS));
    a->found = a->id >= 1 && a->id <= DEMO_USER_COUNT ? &users[a->id - 1] : NULL;
    return 0; /* no such user is an answer, not a failure of the lookup */
}

const struct demo_user *
demo_find_user(unsigned long id)
{
    struct find_user_arg arg = {.id = id, .found = NULL};
    funcmon_profile("find_user", "database", find_user, &arg);
    return arg.found;
}

size_t
demo_list_users(const struct demo_user **list)
{
    FUNCMON_SCOPE("list_users", "database")
    {
        sleep_ns(between_ns(2 * MS, 4 * MS));
    }
    *list = users;
    return DEMO_USER_COUNT;
}

/* ----- payments ----- */

int
demo_validate_payment(int have_user, unsigned long user_id, int have_amount, double amount, const char **why)
{
    struct funcmon_call call = funcmon_begin(FUNCMON_SITE("validate_payment", "payment"));
    int status = 0;
    if (!have_user || user_id == 0)
        status = 400, *why = "user_id must be a positive integer";
    else if (!have_amount)
        status = 400, *why = "amount is required";
    else if (amount <= 0)
        status = 400, *why = "amount must be positive";
    else if (amount > DEMO_PAYMENT_LIMIT)
        status = 422, *why = "amount is over the limit of 10000 cents";
    else if (amount != (double)(long)amount) /* in range now: the conversion is defined */
        status = 400, *why = "amount must be a whole number of cents";
    funcmon_end(&call, status != 0);
    return status;
}

static int
charge_card(struct funcmon_ctx *ctx, void *arg)
{
    long amount = *(long *)arg;
    if (amount % 10 == 7) {
        sleep_ns(between_ns(1 * MS, 3 * MS));
        return -EPROTO; /* the gateway refused to talk */
    }
    /* Amounts ending in 9 take the gateway 80 ms, past the 40 ms deadline. */
    return work_with_context(ctx, amount % 10 == 9 ? 80 * MS : between_ns(5 * MS, 15 * MS));
}

struct payment {
    unsigned long user_id;
    long amount;
    enum demo_payment_result result;
    uint64_t id;
};

static int
process_payment(void *arg)
{
    static uint64_t last_payment_id;
    struct payment *p = arg;
    if (demo_find_user(p->user_id) == NULL) {
        p->result = DEMO_PAYMENT_UNKNOWN_USER;
        return 0; /* the client's mistake, answered with a 4xx */
    }
    struct funcmon_ctx ctx;
    funcmon_ctx_init(&ctx, 40 * MS);
    int err = funcmon_profile_ctx(&ctx, "charge_card", "payment_gateway", charge_card, &p->amount);
    if (err != 0) {
        p->result = err == FUNCMON_EDEADLINE ? DEMO_PAYMENT_TIMEOUT : DEMO_PAYMENT_GATEWAY_ERROR;
        return err;
    }
    if (db_statement(FUNCMON_SITE("insert_payment", "database"), 1 * MS, 3 * MS, 0) != 0) {
        p->result = DEMO_PAYMENT_GATEWAY_ERROR;
        return -EIO;
    }
    p->id = __atomic_add_fetch(&last_payment_id, 1, __ATOMIC_RELAXED);
    p->result = DEMO_PAYMENT_OK;
    return 0;
}

enum demo_payment_result
demo_process_payment(unsigned long user_id, long amount, uint64_t *payment_id)
{
    struct payment p = {.user_id = user_id, .amount = amount, .result = DEMO_PAYMENT_OK, .id = 0};
    funcmon_profile("process_payment", "payment", process_payment, &p);
    *payment_id = p.id;
    return p.result;
}
