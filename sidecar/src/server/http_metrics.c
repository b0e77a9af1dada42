/*
 * http_metrics.c - GET /metrics (METRICS.PATH): the Prometheus text exposition of the
 * published view (DESIGN §6), written by render_prom.c.
 *
 * The one endpoint outside PROFILING.PATH: public by design (no token), and it reads no
 * query, so a scraper's parameters can never turn it into an error.
 */
#include <stdlib.h>

#include "http_internal.h"
#include "render_prom.h"

int
funcmond_http_get_metrics(const struct funcmond_http_call *c)
{
    char *out = NULL;
    size_t len = 0;
    const struct funcmond_view *v = funcmond_view_begin(c->h->reader);
    int ret = funcmond_render_prom(v, &out, &len);
    funcmond_view_end(c->h->reader);
    if (ret != 0)
        return funcmond_http_send_error(c->req, 500, "out of memory", NULL, NULL);
    funcmond_http_send_body(c->req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", out, len);
    free(out);
    return 0;
}
