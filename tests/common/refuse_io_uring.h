/*
 * refuse_io_uring.h - makes this process (and everything it starts) unable to use
 * io_uring, as a container runtime's default seccomp profile does, so that tests can run
 * funcmond on its epoll loop for real.
 */
#ifndef FUNCMON_TEST_REFUSE_IO_URING_H
#define FUNCMON_TEST_REFUSE_IO_URING_H

/* Installs a seccomp filter on every thread of the process (inherited by its children and
 * kept across exec) under which io_uring_setup, io_uring_enter and io_uring_register fail
 * with ENOSYS, and futex_waitv too if and_futex_waitv (as under an older profile), by their
 * native numbers and, on x86-64, their x32 ones. Then checks that io_uring_setup (and
 * futex_waitv if asked) really fails with ENOSYS. Returns 0, -ENOTSUP on an architecture
 * it does not know, the -errno of prctl/seccomp (-EBUSY: a thread could not take the
 * filter), or -EPROTO when the filter is in but the calls are not refused (said on
 * stderr). */
int harness_refuse_io_uring(int and_futex_waitv);

/* When the environment has FUNCMON_TEST_REFUSE_IO_URING=1 (or =futex_waitv, which refuses
 * that call too): harness_refuse_io_uring, once; a test that cannot be run that way is
 * skipped (exit 77, the reason printed), and one whose filter is in but does not refuse
 * fails (exit 1). */
void harness_refuse_io_uring_if_asked(void);

#endif
