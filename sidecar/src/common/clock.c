/*
 * clock.c - reading clocks as nanoseconds (clock.h).
 */
#include "clock.h"

uint64_t
funcmond_clock_ns(clockid_t clock)
{
    struct timespec ts;

    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * FUNCMOND_SECOND_NS + (uint64_t)ts.tv_nsec;
}

uint64_t
funcmond_mono_ns(void)
{
    return funcmond_clock_ns(CLOCK_MONOTONIC);
}

uint64_t
funcmond_real_ns(void)
{
    return funcmond_clock_ns(CLOCK_REALTIME);
}

uint64_t
funcmond_boot_real_ns(void)
{
    return funcmond_real_ns() - funcmond_clock_ns(CLOCK_BOOTTIME);
}
