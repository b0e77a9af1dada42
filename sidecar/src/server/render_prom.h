/*
 * render_prom.h - GET /metrics: a published view in the Prometheus text format 0.0.4.
 *
 * The families, their order, names, types and labels are the contract of DESIGN §6 (the
 * PromQL of the original guide must keep working). Rendering reads only the view, so it
 * runs on an HTTP thread inside a view read section and never touches the drain thread.
 */
#ifndef FUNCMOND_RENDER_PROM_H
#define FUNCMOND_RENDER_PROM_H

#include <stddef.h>

#include "view.h"

/*
 * Renders v. Every family has its # HELP and # TYPE lines, in a fixed order, even when it
 * has no sample. Label values are valid UTF-8 (each byte that is not part of a valid UTF-8
 * sequence becomes U+FFFD) and escaped; function label sets that become equal through that
 * replacement are merged into one series. On success returns 0 and sets *out to a malloc'd
 * buffer of *len bytes (NUL-terminated beyond them) that the caller frees. On error returns
 * -ENOMEM and leaves *out and *len untouched.
 */
int funcmond_render_prom(const struct funcmond_view *v, char **out, size_t *len);

#endif
