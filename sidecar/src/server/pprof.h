/*
 * pprof.h - pprof profiles for funcmond's /debug/pprof endpoints (DESIGN §5).
 *
 * Two pieces. A builder (pprof_profile.c) turns stacks of frames with values into a gzip'd
 * perftools.profiles.Profile protobuf, the format `go tool pprof` reads; the heap endpoint
 * feeds it profiled-call stacks, and funcmond_pprof_cpu() (pprof_cpu.c) feeds it the call
 * chains it samples from a client process with perf_event_open (pprof_sampler.h) and
 * symbolises from the process's own ELF files (pprof_symbols.h). Nothing here keeps global
 * state: each call stands alone and may run on any thread.
 */
#ifndef FUNCMOND_PPROF_H
#define FUNCMOND_PPROF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define FUNCMOND_PPROF_MAX_VALUES 8         /* values per sample */
#define FUNCMOND_PPROF_CPU_MAX_SECONDS 3600 /* as PROFILING.CPU_PROFILE_DURATION */
#define FUNCMOND_PPROF_CPU_MAX_HZ 10000

struct funcmond_pprof;

/* One frame of a sample for funcmond_pprof_add_frames(). Frames with the same name and
 * filename are one pprof function; with the same function, address and mapping, one
 * location. */
struct funcmond_pprof_frame {
    const char *name;     /* function name; NULL is taken as "" */
    const char *filename; /* file the function comes from (source or object file), NULL for none */
    uint64_t address;     /* instruction address, 0 when there is none */
    uint32_t mapping;     /* id from funcmond_pprof_mapping(), 0 for none */
};

/* Starts a profile whose samples carry n_values values, named sample_types[i] in units
 * units[i] (e.g. "alloc_space"/"bytes"), and whose sampling period is `period` of
 * period_type/period_unit (e.g. "cpu"/"nanoseconds"). The strings are copied. Returns NULL
 * if n_values is outside 1..FUNCMOND_PPROF_MAX_VALUES, a name is NULL, or memory ran out. */
struct funcmond_pprof *funcmond_pprof_new(const char *const *sample_types, const char *const *units, int n_values,
                                          const char *period_type, const char *period_unit, int64_t period);

/* Declares that memory [start, limit) maps `filename` from file offset `offset`, and
 * returns the mapping's id for frames (ids count from 1 in call order; pprof takes the
 * first mapping for the main binary, so declare it first). An identical mapping gets the
 * same id. Mappings are written with has_functions set, so pprof never tries to symbolise
 * them again. Returns 0 if p is NULL or memory ran out, now or in an earlier call (the
 * failure is reported by finish). */
uint32_t funcmond_pprof_mapping(struct funcmond_pprof *p, uint64_t start, uint64_t limit, uint64_t offset, const char *filename);

/* Adds one sample: n_frames function names, leaf first, and n_values values. Equal names
 * give the same function and location, and a stack seen before adds its values to that
 * sample (saturating), so the profile holds one sample per distinct stack. Invalid
 * arguments are ignored; running out of memory is remembered and reported by finish. */
void funcmond_pprof_add(struct funcmond_pprof *p, const char *const *frames, int n_frames, const int64_t *values);

/* The same with addresses, file names and mappings (what the CPU profile uses). */
void funcmond_pprof_add_frames(struct funcmond_pprof *p, const struct funcmond_pprof_frame *frames, int n_frames,
                               const int64_t *values);

/* Adds a free-text comment (pprof -comments shows them). */
void funcmond_pprof_comment(struct funcmond_pprof *p, const char *text);

/* Encodes the profile (time_ns: wall-clock start in ns since the epoch, duration_ns: how
 * long it covers), gzips it and frees p. On success returns 0 with *gz a malloc'd buffer
 * of *gz_len bytes for the caller to free(). Returns -ENOMEM if memory ran out now or
 * during any earlier call (then *gz is NULL), -EINVAL if p or an out pointer is NULL. */
int funcmond_pprof_finish(struct funcmond_pprof *p, int64_t time_ns, int64_t duration_ns, unsigned char **gz, size_t *gz_len);

/* Frees a profile without encoding it. NULL is ignored. */
void funcmond_pprof_free(struct funcmond_pprof *p);

/* CPU profile of process pid: samples every thread of it (threads that start during the
 * run are picked up within about 100 ms) at hz samples per second of CPU time with
 * software cpu-clock perf events, user-space call chains only (frame-pointer unwinding
 * by the kernel: code built without frame pointers gives short stacks). Blocks for
 * `seconds`, or less if the process exits, then symbolises the stacks from the ELF
 * .symtab (else .dynsym) of each mapped file; an address without a symbol is named
 * "0x<addr>". The profile has sample types samples/count and cpu/nanoseconds, period
 * 1e9/hz ns, one sample per distinct stack; lost samples and threads that could not be
 * followed are noted in comments.
 *
 * Limits: a thread that lives less than the 100 ms rescan period may be missed; a leaf
 * function built without a frame (gcc does that even with -fno-omit-frame-pointer) hides
 * its direct caller; local functions of stripped libraries (libc's start_thread) have no
 * symbol and show as hex; only 64-bit little-endian ELF is read; the mappings are read
 * at the start and at the end (the files stay open, so a process that exits early is
 * still symbolised), so a library both loaded and unloaded in between shows as hex.
 *
 * `cancel` (may be NULL) is polled at least every 100 ms; a non-zero value ends the run.
 * On success returns 0 with *gz (malloc'd, free() it) and *gz_len. On failure returns
 * -errno with a one-line reason in err (when errlen > 0) and *gz NULL:
 *   -EINVAL     seconds outside 1..FUNCMOND_PPROF_CPU_MAX_SECONDS, hz outside
 *               1..FUNCMOND_PPROF_CPU_MAX_HZ, pid <= 0, or a NULL out pointer
 *   -ESRCH      no such process (or it exited before any thread could be opened)
 *   -EACCES, -EPERM  perf_event_open or the ring mmap refused (perf_event_paranoid,
 *               another uid without CAP_PERFMON, locked-memory limit)
 *   -ENODEV, -ENOENT, -EOPNOTSUPP, -ENOSYS  no software cpu-clock events here
 *   -EMFILE     out of file descriptors
 *   -ECANCELED  *cancel became non-zero
 *   -ENOMEM     out of memory */
int funcmond_pprof_cpu(pid_t pid, int seconds, int hz, const volatile int *cancel, unsigned char **gz, size_t *gz_len, char *err,
                       size_t errlen);

#endif
