/*
 * refuse_io_uring_exec.c - `refuse_io_uring CMD ARGS...`: runs CMD with io_uring refused
 * by a seccomp filter, as under a container runtime's default profile (see
 * tests/common/refuse_io_uring.h). The shell tests start funcmond (or themselves) under it;
 * FUNCMON_TEST_REFUSE_IO_URING=1 tells what runs below that io_uring is refused.
 * Exit 77 (skip) when the filter cannot be installed, 1 when it is in but does not refuse,
 * 127 when CMD cannot be run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "refuse_io_uring.h"

int
main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: refuse_io_uring CMD [ARGS...]\n");
        return 2;
    }
    int ret = harness_refuse_io_uring(0);
    if (ret == -EPROTO) {
        printf("FAIL: a seccomp filter is in, but does not refuse io_uring\n");
        return 1;
    }
    if (ret != 0) {
        printf("SKIP: cannot refuse io_uring with a seccomp filter: %s\n", strerror(-ret));
        return 77;
    }
    setenv("FUNCMON_TEST_REFUSE_IO_URING", "1", 1);
    execvp(argv[1], argv + 1);
    perror(argv[1]);
    return 127;
}
