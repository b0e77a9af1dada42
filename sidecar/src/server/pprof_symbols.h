/*
 * pprof_symbols.h - names for the code addresses of another process, from its own ELF
 * files, for the CPU profile (pprof_cpu.c).
 *
 * The kernel hands the CPU sampler bare return addresses; pprof wants function names.
 * /proc/<pid>/maps gives the file and offset behind each address, the file's PT_LOAD
 * headers turn the offset into a link-time address, and its .symtab (else .dynsym) names
 * it. The files are opened when the mappings are read, so a process that exits before the
 * profile is built is still symbolised. Everything read from the target (its maps and its
 * files) is untrusted input.
 */
#ifndef FUNCMOND_PPROF_SYMBOLS_H
#define FUNCMOND_PPROF_SYMBOLS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pprof.h"

struct funcmond_symbols;

/* A symboliser for process pid with no mappings read yet. NULL if memory ran out. */
struct funcmond_symbols *funcmond_symbols_new(pid_t pid);

/* (Re)reads the executable mappings of the process and opens the files behind them. On
 * failure the mappings read before stay. Returns 0, or -errno: -ESRCH if the process is
 * gone (or maps no executable code), -ENOMEM, or the error of opening /proc/<pid>/maps. */
int funcmond_symbols_read_maps(struct funcmond_symbols *sy);

/* Declares the file-backed mappings to profile p, the main executable's first (pprof names
 * the profile after mapping 1), and remembers their ids for funcmond_symbols_frame. */
void funcmond_symbols_declare_mappings(struct funcmond_symbols *sy, struct funcmond_pprof *p);

/* Fills frame for address addr. lookup is the address to name: a return address minus one
 * for callers, so that a call at the very end of a function is not given to the next.
 * hex (hexlen bytes, 24 are enough) receives the "0x..." name when there is no symbol, and
 * frame may point into it and into sy, so both must outlive the frame's use. */
void funcmond_symbols_frame(struct funcmond_symbols *sy, uint64_t addr, uint64_t lookup, struct funcmond_pprof_frame *frame,
                            char *hex, size_t hexlen);

/* Closes the files and frees sy. NULL is ignored. */
void funcmond_symbols_free(struct funcmond_symbols *sy);

#endif
