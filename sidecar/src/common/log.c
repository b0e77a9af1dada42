/*
 * log.c - one timestamped line per event on stderr (see log.h).
 *
 * The line is formatted into a local buffer and written with one write(2), so lines from
 * the drain and HTTP threads never interleave.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

enum funcmond_log_level funcmond_log_min = FUNCMOND_LOG_INFO;

void
funcmond_log(enum funcmond_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    char line[1024];
    struct tm tm;
    va_list ap;

    if (level < funcmond_log_min)
        return;
    uint64_t now = funcmond_real_ns();
    time_t secs = (time_t)(now / FUNCMOND_SECOND_NS);
    gmtime_r(&secs, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ funcmond %s: ", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)(now % FUNCMOND_SECOND_NS / 1000000), names[level]);
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : ((size_t)m < sizeof(line) - (size_t)n - 1 ? (size_t)m : sizeof(line) - (size_t)n - 2));
    line[len++] = '\n';
    if (write(2, line, len) < 0)
        return;
}
