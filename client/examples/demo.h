/*
 * demo.h - the modules of funcmon-demo and what they share.
 *
 * funcmon-demo is a small JSON HTTP service that shows funcmon at work: every request is
 * profiled by the libmicrohttpd middleware, its handlers run profiled functions in all four
 * instrumentation styles, and a built-in load generator keeps traffic flowing so that the
 * sidecar always has something to show. One module per file:
 *   demo_main.c       options, signals, start and stop
 *   demo_routes.c     the routes and their handlers
 *   demo_scenarios.c  the profiled functions (the scenarios of the original guide's demo)
 *   demo_load.c       the load generator (real HTTP requests over loopback)
 */
#ifndef FUNCMON_DEMO_H
#define FUNCMON_DEMO_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <microhttpd.h>

/* ----- demo_scenarios.c: profiled work, each function one scenario ----- */

/* The package of the scenarios of the original guide's demo. */
#define DEMO_PACKAGE "demo"

/* What a scenario did, for the handler to report. */
struct demo_outcome {
    int failed;          /* non-zero: the scenario failed (the handler answers 5xx) */
    int deadline_missed; /* the scenario ran past its deadline */
    uint64_t value;      /* a figure to report: milliseconds, bytes, iterations */
    const char *detail;  /* a static text on what happened */
};

/* Each runs one scenario on the calling thread and fills *out. They never fail for lack of
 * funcmon: when profiling is off the work runs plain. */
void demo_slow_task(struct demo_outcome *out);           /* 100 ms of work (funcmon_profile) */
void demo_deadline_task(struct demo_outcome *out);       /* work against a deadline (funcmon_profile_ctx) */
void demo_failing_task(struct demo_outcome *out);        /* always fails (funcmon_profile) */
void demo_repeated_task(struct demo_outcome *out);       /* five calls of varying length (funcmon_begin/end) */
void demo_allocate_memory(struct demo_outcome *out);     /* 1 MiB allocated, used, freed (FUNCMON_SCOPE) */
void demo_database_operations(struct demo_outcome *out); /* nested simulated queries */
void demo_api_calls(struct demo_outcome *out);           /* simulated remote calls with deadlines */
void demo_file_operations(struct demo_outcome *out);     /* a real temporary file written and read back */

/* The simulated user store: ids 1..DEMO_USER_COUNT exist. */
#define DEMO_USER_COUNT 10
struct demo_user {
    unsigned id;
    const char *name;
    const char *email;
};
/* Looks a user up in the simulated database (a profiled query). NULL when unknown. */
const struct demo_user *demo_find_user(unsigned long id);
/* Lists the users (a profiled query); returns the count, *users points at the table. */
size_t demo_list_users(const struct demo_user **users);

/* Payments: amounts are whole cents in [1, DEMO_PAYMENT_LIMIT]. */
#define DEMO_PAYMENT_LIMIT 10000
enum demo_payment_result {
    DEMO_PAYMENT_OK,
    DEMO_PAYMENT_UNKNOWN_USER,  /* 404 */
    DEMO_PAYMENT_GATEWAY_ERROR, /* 502: the simulated gateway failed (amounts ending in 7) */
    DEMO_PAYMENT_TIMEOUT,       /* 504: the gateway missed its deadline (amounts ending in 9) */
};
/* Processes a payment already validated (amount within limits): finds the user, charges
 * through the simulated gateway, records it. Profiled, with nested profiled steps. */
enum demo_payment_result demo_process_payment(unsigned long user_id, long amount, uint64_t *payment_id);
/* Validates a payment request's fields (a profiled call, begin/end style): 0 when valid,
 * else the HTTP status to answer (400 or 422) with *why set to a static text. */
int demo_validate_payment(int have_user, unsigned long user_id, int have_amount, double amount, const char **why);

/* A small per-thread pseudo-random number in [0, bound); bound > 0. */
uint32_t demo_random(uint32_t bound);

/* CLOCK_MONOTONIC in nanoseconds: the load's schedule and the scenarios' sleeps. */
static inline uint64_t
monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ----- demo_routes.c: the HTTP service ----- */

/* The route templates the service answers, in the middleware's syntax, NULL-terminated. */
extern const char *const demo_route_templates[];

/* The libmicrohttpd access handler of the service (cls unused), and the completion
 * callback that frees what it allocated per request. */
enum MHD_Result demo_on_request(void *cls, struct MHD_Connection *connection, const char *url, const char *method,
                                const char *version, const char *upload_data, size_t *upload_data_size, void **req_cls);
void demo_on_completed(void *cls, struct MHD_Connection *connection, void **req_cls, enum MHD_RequestTerminationCode toe);

/* ----- demo_load.c: the load generator ----- */

/* Requests the load generator made, by what came back. */
struct demo_load_counts {
    uint64_t sent; /* requests whose answer was read */
    uint64_t status_2xx;
    uint64_t status_4xx;
    uint64_t status_5xx;
    uint64_t status_other;
    uint64_t failed; /* connect, send or read failed: no answer */
};

struct demo_load;

/*
 * Starts the load: threads that send a mix of every route to target over keep-alive
 * connections, about rps requests per second in all. Returns NULL on failure (no thread
 * could start) with a message in err.
 */
struct demo_load *demo_load_start(const struct sockaddr_in *target, unsigned rps, char *err, size_t errlen);
/* Stops the load: each thread finishes the request it is in, then exits. Fills *counts
 * (may be NULL) and frees load. */
void demo_load_stop(struct demo_load *load, struct demo_load_counts *counts);

#endif
