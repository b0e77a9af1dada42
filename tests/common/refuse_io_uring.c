/*
 * refuse_io_uring.c - a seccomp filter refusing io_uring (see refuse_io_uring.h).
 *
 * Docker 25 and later, containerd 2 and podman refuse io_uring in their default seccomp
 * profiles; funcmond then runs on epoll. Tests get the same refusal from the same
 * mechanism, so nothing in funcmond knows it is being tested: no switch, only the kernel
 * saying no.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "refuse_io_uring.h"

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#endif

int
harness_refuse_io_uring(int and_futex_waitv)
{
#ifndef NATIVE_ARCH
    (void)and_futex_waitv;
    return -ENOTSUP;
#else
    uint32_t waitv_nr = and_futex_waitv ? __NR_futex_waitv : UINT32_MAX; /* no call has that number */
    struct sock_filter code[] = {
        /* Calls of another architecture's ABI are let through: only the native numbers below mean io_uring. */
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 4, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_enter, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_register, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, waitv_nr, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
    };
    struct sock_fprog prog = {.len = sizeof(code) / sizeof(code[0]), .filter = code};
    /* Without privileges a filter needs no_new_privs; it is kept across exec too. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -errno;
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog) != 0)
        return -errno;
    return 0;
#endif
}

void
harness_refuse_io_uring_if_asked(void)
{
    static int done;
    const char *v = getenv("FUNCMON_TEST_REFUSE_IO_URING");
    if (done || v == NULL || (strcmp(v, "1") != 0 && strcmp(v, "futex_waitv") != 0))
        return;
    int ret = harness_refuse_io_uring(strcmp(v, "futex_waitv") == 0);
    if (ret != 0) {
        printf("SKIP: cannot refuse io_uring with a seccomp filter: %s\n", strerror(-ret));
        exit(77);
    }
    done = 1;
}
