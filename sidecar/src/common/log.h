/*
 * log.h - funcmond's log lines: one line each on stderr, with a UTC timestamp and a level,
 * so that a container's log collector can take them as they are.
 */
#ifndef FUNCMOND_LOG_H
#define FUNCMOND_LOG_H

enum funcmond_log_level { FUNCMOND_LOG_DEBUG, FUNCMOND_LOG_INFO, FUNCMOND_LOG_WARN, FUNCMOND_LOG_ERROR };

/* Lines below this level are dropped (FUNCMOND_LOG_INFO unless FUNCMOND_DEBUG=1). */
extern enum funcmond_log_level funcmond_log_min;

void funcmond_log(enum funcmond_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define LOG_DEBUG(...) funcmond_log(FUNCMOND_LOG_DEBUG, __VA_ARGS__)
#define LOG_INFO(...) funcmond_log(FUNCMOND_LOG_INFO, __VA_ARGS__)
#define LOG_WARN(...) funcmond_log(FUNCMOND_LOG_WARN, __VA_ARGS__)
#define LOG_ERROR(...) funcmond_log(FUNCMOND_LOG_ERROR, __VA_ARGS__)

#endif
