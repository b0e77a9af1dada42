/*
 * build_tree_user.c - a service built the way a user builds against a funcmon build tree
 * (pkg-config or CMake's funcmon_DIR, nothing else): makes CALLS profiled calls of
 * "tree_call" in package "tree" and exits.
 */
#include <stdio.h>
#include <stdlib.h>

#include <funcmon.h>

#define CALLS 7

int
main(void)
{
    static uint32_t site; /* a cache, as a command table keeps one per command */
    if (funcmon_init(NULL) != 0)
        return 1;
    for (int i = 0; i < CALLS; i++) {
        struct funcmon_call c = funcmon_begin(funcmon_site_cached(&site, "tree_call", "tree"));
        funcmon_end(&c, i == 0);
    }
    funcmon_shutdown();
    printf("%d calls\n", CALLS);
    return 0;
}
