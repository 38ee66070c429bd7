/* Helpers shared by the eventpoll check programs: each program does one epoll pitfall (or
 * its correct form) and exits 0; `eventpoll check` / EVENTPOLL_CHECK=1 must name it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define CHECK(cond)                                                                 \
    do {                                                                            \
        if (!(cond)) {                                                              \
            fprintf(stderr, "%s:%d: %s failed (errno %d)\n", __FILE__, __LINE__,    \
                    #cond, errno);                                                  \
            exit(1);                                                                \
        }                                                                           \
    } while (0)

static inline void add(int ep, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev = {.events = events, .data.u64 = data};
    CHECK(epoll_ctl(ep, op, fd, &ev) == 0);
}

static inline void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The one-shot threshold the checker uses (EVENTPOLL_CHECK_ONESHOT_MS, default 1000). */
static inline long oneshot_ms(void) {
    const char *v = getenv("EVENTPOLL_CHECK_ONESHOT_MS");
    return v && *v ? atol(v) : 1000;
}
