/*
 * demo_routes.c - the HTTP service of funcmon-demo: its routes, their handlers and the
 * JSON they answer.
 *
 * The routes are those of a small users-and-payments API plus one route per scenario of the
 * original guide's demo, so that every request the load generator (or a person with curl)
 * sends runs profiled work, and the middleware's per-route profiles (GET_/v1/users/:id,
 * POST_/v1/payments, ...) sit beside the profiles of the functions they called. Answers
 * cover the cases worth seeing in the profiles: 2xx, 4xx rejections (bad input, unknown
 * ids, amounts over the limit) and 5xx failures (a failing task, a gateway error or
 * timeout). Everything that comes from a request is validated before use.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <funcmon_mhd.h>

#include "demo.h"

/* The largest request body taken (a payment is a few dozen bytes). */
#define BODY_MAX 4096
/* The largest answer (the user list is under 1 KiB). */
#define ANSWER_MAX 4096

const char *const demo_route_templates[] = {
    "/healthz",
    "/v1/users",
    "/v1/users/:id",
    "/v1/payments",
    "/v1/scenarios/slow",
    "/v1/scenarios/deadline",
    "/v1/scenarios/fail",
    "/v1/scenarios/repeat",
    "/v1/scenarios/memory",
    "/v1/scenarios/database",
    "/v1/scenarios/api",
    "/v1/scenarios/file",
    NULL,
};

/* What the service keeps per request between libmicrohttpd's calls of the handler. */
struct request {
    size_t body_len;
    int body_too_large;
    char body[BODY_MAX + 1];
};

/* ----- answers ----- */

/* Queues a JSON answer; allow, when not NULL, is the Allow header of a 405. */
static enum MHD_Result
send_json(struct MHD_Connection *connection, unsigned status, const char *json, size_t len, const char *allow)
{
    struct MHD_Response *response = MHD_create_response_from_buffer(len, (void *)json, MHD_RESPMEM_MUST_COPY);
    if (response == NULL)
        return MHD_NO;
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (allow != NULL)
        MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, allow);
    /* The middleware's drop-in for MHD_queue_response: the request's profile gets this status. */
    enum MHD_Result rc = funcmon_mhd_queue_response(connection, status, response);
    MHD_destroy_response(response);
    return rc;
}

/* Answers status with the JSON that fmt makes. */
static enum MHD_Result __attribute__((format(printf, 3, 4)))
answer(struct MHD_Connection *connection, unsigned status, const char *fmt, ...)
{
    char json[ANSWER_MAX];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(json, sizeof(json), fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len >= sizeof(json)) {
        static const char too_long[] = "{\"error\":\"answer too long\"}";
        return send_json(connection, MHD_HTTP_INTERNAL_SERVER_ERROR, too_long, sizeof(too_long) - 1, NULL);
    }
    return send_json(connection, status, json, (size_t)len, NULL);
}

static enum MHD_Result
answer_error(struct MHD_Connection *connection, unsigned status, const char *message)
{
    /* Every message is one of this file's literals: no escaping needed. */
    return answer(connection, status, "{\"error\":\"%s\",\"status\":%u}", message, status);
}

/* 405 for a known path asked with another method. */
static enum MHD_Result
answer_not_allowed(struct MHD_Connection *connection, const char *allow)
{
    static const char json[] = "{\"error\":\"method not allowed\",\"status\":405}";
    return send_json(connection, MHD_HTTP_METHOD_NOT_ALLOWED, json, sizeof(json) - 1, allow);
}

/* ----- users ----- */

/* Parses a path id: 1 to 9 decimal digits, nothing else. 0 when malformed. */
static unsigned long
parse_id(const char *text)
{
    size_t n = strlen(text);
    if (n == 0 || n > 9 || strspn(text, "0123456789") != n)
        return 0;
    return strtoul(text, NULL, 10);
}

static enum MHD_Result
get_users(struct MHD_Connection *connection)
{
    const struct demo_user *list;
    size_t count = demo_list_users(&list);
    char json[ANSWER_MAX];
    size_t len = (size_t)snprintf(json, sizeof(json), "{\"users\":[");
    for (size_t i = 0; i < count && len < sizeof(json); i++)
        len += (size_t)snprintf(json + len, sizeof(json) - len, "%s{\"id\":%u,\"name\":\"%s\",\"email\":\"%s\"}", i ? "," : "",
                                list[i].id, list[i].name, list[i].email);
    if (len < sizeof(json))
        len += (size_t)snprintf(json + len, sizeof(json) - len, "],\"count\":%zu}", count);
    if (len >= sizeof(json))
        return answer_error(connection, MHD_HTTP_INTERNAL_SERVER_ERROR, "user list too long");
    return send_json(connection, MHD_HTTP_OK, json, len, NULL);
}

static enum MHD_Result
get_user(struct MHD_Connection *connection, const char *id_text)
{
    unsigned long id = parse_id(id_text);
    if (id == 0)
        return answer_error(connection, MHD_HTTP_BAD_REQUEST, "id must be a positive integer");
    const struct demo_user *user = demo_find_user(id);
    if (user == NULL)
        return answer_error(connection, MHD_HTTP_NOT_FOUND, "no user with that id");
    return answer(connection, MHD_HTTP_OK, "{\"id\":%u,\"name\":\"%s\",\"email\":\"%s\"}", user->id, user->name, user->email);
}

/* ----- payments ----- */

/* The fields of a payment request that the service reads. */
struct payment_request {
    int have_user, have_amount;
    double user_id, amount;
};

static const char *
skip_space(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

/* Skips a JSON string at p (at its opening quote); NULL when malformed. */
static const char *
skip_string(const char *p)
{
    for (p++; *p != '"'; p++) {
        if (*p == '\0' || (unsigned char)*p < 0x20)
            return NULL;
        if (*p == '\\' && *++p == '\0')
            return NULL;
    }
    return p + 1;
}

/* Reads a JSON number at p into *value; NULL when malformed. */
static const char *
read_number(const char *p, double *value)
{
    if (!isdigit((unsigned char)p[*p == '-']))
        return NULL; /* strtod would also take "inf", "-nan" and hex */
    char *end;
    errno = 0;
    *value = strtod(p, &end);
    return errno != 0 || end == p ? NULL : end;
}

/*
 * Parses a payment body: one flat JSON object; "user_id" and "amount" are numbers, other
 * members (strings, numbers, true, false, null) are ignored. Returns 0, or -EINVAL when the
 * body is not such an object.
 */
static int
parse_payment(const char *body, struct payment_request *req)
{
    const char *p = skip_space(body);
    memset(req, 0, sizeof(*req));
    if (*p++ != '{')
        return -EINVAL;
    p = skip_space(p);
    if (*p == '}')
        return *skip_space(p + 1) == '\0' ? 0 : -EINVAL;
    for (;;) {
        if (*p != '"')
            return -EINVAL;
        const char *key = p + 1, *key_end = skip_string(p);
        if (key_end == NULL)
            return -EINVAL;
        size_t key_len = (size_t)(key_end - 1 - key);
        p = skip_space(key_end);
        if (*p++ != ':')
            return -EINVAL;
        p = skip_space(p);
        int *have = NULL;
        double *value = NULL;
        if (key_len == 7 && memcmp(key, "user_id", 7) == 0)
            have = &req->have_user, value = &req->user_id;
        else if (key_len == 6 && memcmp(key, "amount", 6) == 0)
            have = &req->have_amount, value = &req->amount;
        if (value != NULL) {
            if ((p = read_number(p, value)) == NULL)
                return -EINVAL;
            *have = 1;
        } else if (*p == '"') {
            if ((p = skip_string(p)) == NULL)
                return -EINVAL;
        } else if (strncmp(p, "true", 4) == 0 || strncmp(p, "null", 4) == 0) {
            p += 4;
        } else if (strncmp(p, "false", 5) == 0) {
            p += 5;
        } else {
            double ignored;
            if ((p = read_number(p, &ignored)) == NULL)
                return -EINVAL; /* nested objects and arrays are not part of a payment */
        }
        p = skip_space(p);
        if (*p == '}')
            return *skip_space(p + 1) == '\0' ? 0 : -EINVAL;
        if (*p++ != ',')
            return -EINVAL;
        p = skip_space(p);
    }
}

static enum MHD_Result
post_payment(struct MHD_Connection *connection, struct request *req)
{
    if (req->body_too_large)
        return answer_error(connection, MHD_HTTP_CONTENT_TOO_LARGE, "body over 4096 bytes");
    req->body[req->body_len] = '\0';
    struct payment_request pr;
    if (strlen(req->body) != req->body_len || parse_payment(req->body, &pr) != 0)
        return answer_error(connection, MHD_HTTP_BAD_REQUEST, "body must be a JSON object");
    const char *why = NULL;
    int have_user = pr.have_user && pr.user_id >= 1 && pr.user_id <= 4294967295.0 && pr.user_id == (double)(long)pr.user_id;
    unsigned long user_id = have_user ? (unsigned long)pr.user_id : 0;
    int status = demo_validate_payment(have_user, user_id, pr.have_amount, pr.amount, &why);
    if (status != 0)
        return answer_error(connection, (unsigned)status, why);
    uint64_t payment_id = 0;
    long amount = (long)pr.amount;
    switch (demo_process_payment(user_id, amount, &payment_id)) {
    case DEMO_PAYMENT_OK:
        return answer(connection, MHD_HTTP_CREATED,
                      "{\"payment_id\":%" PRIu64 ",\"user_id\":%lu,\"amount\":%ld,\"status\":\"paid\"}", payment_id, user_id,
                      amount);
    case DEMO_PAYMENT_UNKNOWN_USER:
        return answer_error(connection, MHD_HTTP_NOT_FOUND, "no user with that user_id");
    case DEMO_PAYMENT_TIMEOUT:
        return answer_error(connection, MHD_HTTP_GATEWAY_TIMEOUT, "the payment gateway did not answer within 40 ms");
    case DEMO_PAYMENT_GATEWAY_ERROR:
        break;
    }
    return answer_error(connection, MHD_HTTP_BAD_GATEWAY, "the payment gateway failed");
}

/* ----- scenarios ----- */

struct scenario {
    const char *name; /* the last path segment */
    void (*run)(struct demo_outcome *out);
};

static const struct scenario scenarios[] = {
    {"slow", demo_slow_task},       {"deadline", demo_deadline_task}, {"fail", demo_failing_task},
    {"repeat", demo_repeated_task}, {"memory", demo_allocate_memory}, {"database", demo_database_operations},
    {"api", demo_api_calls},        {"file", demo_file_operations},
};

static enum MHD_Result
run_scenario(struct MHD_Connection *connection, const struct scenario *s)
{
    struct demo_outcome out = {0};
    s->run(&out);
    unsigned status = out.deadline_missed ? MHD_HTTP_GATEWAY_TIMEOUT : out.failed ? MHD_HTTP_INTERNAL_SERVER_ERROR : MHD_HTTP_OK;
    return answer(connection, status,
                  "{\"scenario\":\"%s\",\"failed\":%s,\"deadline_missed\":%s,\"value\":%" PRIu64 ",\"detail\":\"%s\"}", s->name,
                  out.failed ? "true" : "false", out.deadline_missed ? "true" : "false", out.value, out.detail);
}

/* ----- routing ----- */

/* The answer to a complete request. */
static enum MHD_Result
route(struct MHD_Connection *connection, const char *url, const char *method, struct request *req)
{
    int get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    int post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;

    if (strcmp(url, "/healthz") == 0)
        return get ? answer(connection, MHD_HTTP_OK, "{\"status\":\"ok\"}") : answer_not_allowed(connection, "GET, HEAD");
    if (strcmp(url, "/v1/users") == 0)
        return get ? get_users(connection) : answer_not_allowed(connection, "GET, HEAD");
    if (strncmp(url, "/v1/users/", 10) == 0 && url[10] != '\0' && strchr(url + 10, '/') == NULL)
        return get ? get_user(connection, url + 10) : answer_not_allowed(connection, "GET, HEAD");
    if (strcmp(url, "/v1/payments") == 0)
        return post ? post_payment(connection, req) : answer_not_allowed(connection, "POST");
    if (strncmp(url, "/v1/scenarios/", 14) == 0) {
        for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
            if (strcmp(url + 14, scenarios[i].name) == 0)
                return get ? run_scenario(connection, &scenarios[i]) : answer_not_allowed(connection, "GET, HEAD");
    }
    return answer_error(connection, MHD_HTTP_NOT_FOUND, "no such route");
}

enum MHD_Result
demo_on_request(void *cls, struct MHD_Connection *connection, const char *url, const char *method, const char *version,
                const char *upload_data, size_t *upload_data_size, void **req_cls)
{
    (void)cls;
    (void)version;
    struct request *req = *req_cls;
    if (req == NULL) {
        /* First call: headers only. Keep state for the body, answer on a later call. */
        req = calloc(1, sizeof(*req));
        if (req == NULL)
            return MHD_NO;
        *req_cls = req;
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        size_t n = *upload_data_size;
        if (req->body_too_large || n > BODY_MAX - req->body_len)
            req->body_too_large = 1; /* read and drop the rest, then answer 413 */
        else
            memcpy(req->body + req->body_len, upload_data, n), req->body_len += n;
        *upload_data_size = 0;
        return MHD_YES;
    }
    return route(connection, url, method, req);
}

void
demo_on_completed(void *cls, struct MHD_Connection *connection, void **req_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)connection;
    (void)toe;
    free(*req_cls);
    *req_cls = NULL;
}
