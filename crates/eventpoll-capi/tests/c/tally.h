/*
 * The tally of the C ABI's C test programs (tests/capi.rs builds and runs them): CHECK counts
 * a passed check, or prints "FAIL line N: ..." and counts a failed one; each program ends by
 * printing "N passed, M failed", the line tests/capi.rs reads.
 */
#ifndef EVENTPOLL_TEST_TALLY_H
#define EVENTPOLL_TEST_TALLY_H

#include <stdio.h>

static int passed, failed;

#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (cond) {                                                                        \
            passed++;                                                                      \
        } else {                                                                           \
            failed++;                                                                      \
            printf("FAIL line %d: ", __LINE__);                                            \
            printf(__VA_ARGS__);                                                           \
            printf("\n");                                                                  \
        }                                                                                  \
    } while (0)

#endif
