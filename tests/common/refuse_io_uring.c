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
#include <linux/io_uring.h>
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

#define REFUSED_MAX 8

/* The calls refused, native numbers and, on x86-64, their x32 numbers (same arch in the
 * filter's data, the x32 bit set), which reach the same kernel code. Returns how many. */
static unsigned
refused_calls(int and_futex_waitv, uint32_t nr[REFUSED_MAX])
{
    unsigned n = 0;
    nr[n++] = __NR_io_uring_setup;
    nr[n++] = __NR_io_uring_enter;
    nr[n++] = __NR_io_uring_register;
    if (and_futex_waitv)
        nr[n++] = __NR_futex_waitv;
#ifdef __X32_SYSCALL_BIT
    for (unsigned i = 0, native = n; i < native; i++)
        nr[n++] = __X32_SYSCALL_BIT | nr[i];
#endif
    return n;
}

/* After the filter is in: the calls must really be refused, or the tests that rely on it
 * would silently run on io_uring. Returns 0 or -EPROTO (said on stderr). */
static int
check_refused(int and_futex_waitv)
{
    struct io_uring_params params;
    memset(&params, 0, sizeof(params));
    long fd = syscall(SYS_io_uring_setup, 1, &params);
    if (fd >= 0 || errno != ENOSYS) {
        fprintf(stderr, "refuse_io_uring: the filter is in, yet io_uring_setup %s\n", fd >= 0 ? "succeeded" : strerror(errno));
        if (fd >= 0)
            close((int)fd);
        return -EPROTO;
    }
    if (and_futex_waitv && (syscall(SYS_futex_waitv, NULL, 0, 0, NULL, 0) != -1 || errno != ENOSYS)) {
        fprintf(stderr, "refuse_io_uring: the filter is in, yet futex_waitv is not refused (%s)\n", strerror(errno));
        return -EPROTO;
    }
    return 0;
}

int
harness_refuse_io_uring(int and_futex_waitv)
{
#ifndef NATIVE_ARCH
    (void)and_futex_waitv;
    (void)refused_calls;
    (void)check_refused;
    return -ENOTSUP;
#else
    uint32_t nr[REFUSED_MAX];
    unsigned n = refused_calls(and_futex_waitv, nr);
    struct sock_filter code[4 + REFUSED_MAX + 2];
    unsigned len = 0;
    /* Calls of another architecture's ABI are let through: only the numbers below mean io_uring. */
    code[len++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    code[len++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 1, 0);
    code[len++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    code[len++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    for (unsigned i = 0; i < n; i++) /* a match jumps past the rest and the ALLOW, to the refusal */
        code[len++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr[i], (uint8_t)(n - i), 0);
    code[len++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    code[len++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS);
    struct sock_fprog prog = {.len = (unsigned short)len, .filter = code};
    /* Without privileges a filter needs no_new_privs; it is kept across exec too. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -errno;
    /* With TSYNC, a thread that cannot take the filter makes the call return its id (> 0),
     * errno untouched: anything but 0 is a failure. */
    long ret = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog);
    if (ret < 0)
        return -errno;
    if (ret > 0) {
        fprintf(stderr, "refuse_io_uring: thread %ld cannot take the filter\n", ret);
        return -EBUSY;
    }
    return check_refused(and_futex_waitv);
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
    if (ret == -EPROTO) {
        printf("FAIL: a seccomp filter is in, but does not refuse io_uring\n");
        exit(1);
    }
    if (ret != 0) {
        printf("SKIP: cannot refuse io_uring with a seccomp filter: %s\n", strerror(-ret));
        exit(77);
    }
    done = 1;
}
