/*
 * clock.h - funcmond's one way to read a clock: nanoseconds in a uint64_t.
 *
 * The drain thread schedules by the monotonic clock and stamps what it shows people with
 * the wall clock; /proc gives process start times in ticks since boot, which
 * funcmond_boot_real_ns turns into wall-clock time.
 */
#ifndef FUNCMOND_CLOCK_H
#define FUNCMOND_CLOCK_H

#include <stdint.h>
#include <time.h>

#define FUNCMOND_SECOND_NS 1000000000ull

/* The time of `clock` in nanoseconds. */
uint64_t funcmond_clock_ns(clockid_t clock);
/* CLOCK_MONOTONIC: for intervals and deadlines. */
uint64_t funcmond_mono_ns(void);
/* CLOCK_REALTIME: for what is shown. */
uint64_t funcmond_real_ns(void);
/* The wall-clock time the machine booted (CLOCK_REALTIME minus CLOCK_BOOTTIME). */
uint64_t funcmond_boot_real_ns(void);

#endif
