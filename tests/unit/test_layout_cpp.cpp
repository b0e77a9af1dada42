/*
 * test_layout_cpp.cpp - the public and protocol headers compile as C++ and work there.
 *
 * Services written in C++ include funcmon.h directly: the inline hot path, FUNCMON_SITE,
 * FUNCMON_SCOPE and the layout's static asserts must all compile with a C++ compiler, and
 * a call made from C++ must be recorded like one made from C.
 */
#include <cstdio>
#include <cstdlib>

#include "funcmon.h"
#include "funcmon/consumer.h"
#include "funcmon/layout.h"
#include "funcmon/validate.h"

extern "C" {
#include "check.h"
#include "harness.h"
}

static_assert(sizeof(funcmon_record) == 64, "record size seen from C++");
static_assert(sizeof(funcmon_shm_header) == FUNCMON_HEADER_SIZE, "header size seen from C++");

static int
work(int x)
{
    FUNCMON_SCOPE("cpp_scope", "cpp")
    {
        if (x < 0)
            funcmon_set_error();
    }
    return x * 2;
}

int
main()
{
    harness_private_prefix();
    CHECK_EQ(funcmon_init(nullptr), 0);
    funcmon_consumer c;
    harness_open_self(&c);

    funcmon_call call = funcmon_begin(FUNCMON_SITE("cpp_call", "cpp"));
    funcmon_end(&call, 1);
    CHECK_EQ(work(3), 6);
    CHECK_EQ(work(-1), -2);

    static harness_tally t;
    harness_drain_all(&c, &t);
    uint32_t s_call = funcmon_site("cpp_call", "cpp"), s_scope = funcmon_site("cpp_scope", "cpp");
    CHECK_EQ(t.calls[s_call], 1);
    CHECK_EQ(t.errors[s_call], 1);
    CHECK_EQ(t.calls[s_scope], 2);
    CHECK_EQ(t.errors[s_scope], 1);
    funcmon_consumer_close(&c);
    funcmon_shutdown();
    std::printf("test_layout_cpp: ok\n");
    return 0;
}
