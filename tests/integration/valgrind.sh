#!/bin/sh
# Runs a tracked test program under valgrind's memcheck: any invalid read, write or free,
# or a definite leak, fails the test. Usage: valgrind.sh VALGRIND PROGRAM SANITIZERS
valgrind=$1 program=$2 sanitizers=$3
if [ -n "$sanitizers" ]; then
    echo "SKIP: built with sanitizers ($sanitizers): valgrind cannot run such a program" >&2
    exit 77
fi
if [ -z "$valgrind" ] || [ ! -x "$valgrind" ]; then
    echo "SKIP: valgrind is not installed" >&2
    exit 77
fi
# nouserintercepts: valgrind would otherwise replace funcmon's own malloc family with its
# allocator and bypass the tracker; this way funcmon's wrappers run, and valgrind watches
# the glibc entry points they call.
export FUNCMON_TEST_UNDER_VALGRIND=1
exec "$valgrind" --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
    --soname-synonyms=somalloc=nouserintercepts "$program"
