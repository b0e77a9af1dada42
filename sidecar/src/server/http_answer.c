/*
 * http_answer.c - how funcmond's HTTP server answers: a body, a document in the encoding
 * the client asked for, or an error.
 *
 * Every endpoint family answers through these, so that every answer carries the same
 * headers (no caching: the figures change each second) and every error has the one shape
 * of DESIGN §5, {"error": "...", "status": N}, in JSON or msgpack like any other answer.
 */
#include <string.h>

#include "http_internal.h"

static int
wants_msgpack(h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_ACCEPT, -1);
    return i != -1 && h2o_strstr(req->headers.entries[i].value.base, req->headers.entries[i].value.len,
                                 H2O_STRLIT("application/msgpack")) != SIZE_MAX;
}

void
funcmond_http_send_body(h2o_req_t *req, int status, const char *reason, const char *type, const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = reason;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type, strlen(type));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    /* h2o sends from the request's pool: copy the body there */
    char *copy = h2o_mem_alloc_pool(&req->pool, len ? len : 1);
    memcpy(copy, body, len);
    h2o_send_inline(req, copy, len);
}

static const char *
reason_of(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Error";
    }
}

int
funcmond_http_send_doc(h2o_req_t *req, int status, const struct fval *root)
{
    struct funcmond_buf b = {0};
    int mp = wants_msgpack(req);
    if (mp)
        fdoc_msgpack(root, &b);
    else
        fdoc_json(root, &b);
    if (b.failed) {
        funcmond_buf_free(&b);
        static const char oom[] = "{\"error\":\"out of memory\",\"status\":500}\n";
        funcmond_http_send_body(req, 500, "Internal Server Error", "application/json", oom, sizeof(oom) - 1);
        return 0;
    }
    funcmond_http_send_body(req, status, reason_of(status), mp ? "application/msgpack" : "application/json", b.data, b.len);
    funcmond_buf_free(&b);
    return 0;
}

int
funcmond_http_send_error(h2o_req_t *req, int status, const char *message, void (*extra)(struct fdoc *, struct fval *, void *),
                         void *arg)
{
    struct fdoc *doc = fdoc_new();
    struct fval *o = doc ? fdoc_object(doc) : NULL;
    if (o != NULL) {
        fobj_str(doc, o, "error", message);
        fobj_u64(doc, o, "status", (uint64_t)status);
        if (extra != NULL)
            extra(doc, o, arg);
    }
    if (status == 401)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL, H2O_STRLIT("Bearer"));
    funcmond_http_send_doc(req, status, o);
    fdoc_free(doc);
    return 0;
}
