/*
 * plain_allocator.c - a program that knows nothing of funcmon, for the LD_PRELOAD test.
 *
 * It allocates in steps the test drives over stdin/stdout: after "ready" it waits for a
 * line, then makes 100 allocations of 1000 bytes it keeps and 50 of 3000 bytes it frees,
 * says "done", and waits for end of input. Plain read/write keep stdio's own buffers out
 * of the figures.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
say(const char *s)
{
    if (write(1, s, strlen(s)) < 0)
        exit(3);
}

int
main(void)
{
    static void *kept[100];
    char buf[64];

    say("ready\n");
    if (read(0, buf, sizeof(buf)) <= 0)
        return 1;
    for (int i = 0; i < 100; i++)
        kept[i] = malloc(1000);
    for (int i = 0; i < 50; i++) {
        void *volatile p = malloc(3000);
        free(p);
    }
    say("done\n");
    while (read(0, buf, sizeof(buf)) > 0)
        ;
    for (int i = 0; i < 100; i++)
        free(kept[i]);
    return 0;
}
