/*
 * A measurement, not a test: two shapes of a blocked thread's sleep in the kernel, for the
 * question the seventeenth session asked (README, "What changed in this session"): does a
 * per-thread epoll that holds the thread's eventfd and its instance relay for good sleep
 * cheaper than a ppoll over both, which adds and removes a wait-queue entry on each every
 * sleep?
 *
 *   sleep_shapes pingpong 0|1   two threads pass a byte over a socketpair, each sleeping
 *                               (0) in ppoll([eventfd, relay]) or (1) in epoll_pwait of a
 *                               sleep epoll holding both, then draining its relay (a kernel
 *                               epoll watching its end, edge-triggered, as libeventpoll's
 *                               relays do); prints wall and CPU microseconds a round trip
 *   sleep_shapes nested 0|1     EPOLL_CTL_ADD + DEL of a socket into a relay that is (1) or
 *                               is not (0) itself watched by another epoll; prints ns a pair
 *
 * Built and run by scripts/sleep-shapes.sh (alternated runs).
 */
#define _GNU_SOURCE
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int shape;
static const int ROUNDS = 100000;

static double now(clockid_t c) {
    struct timespec t;
    clock_gettime(c, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

struct side {
    int sock, efd, relay, sleep_ep;
};

static void setup(struct side *s, int sock) {
    s->sock = sock;
    s->efd = eventfd(0, EFD_NONBLOCK);
    s->relay = epoll_create1(0);
    struct epoll_event e = {.events = EPOLLIN | EPOLLET, .data.u64 = 7};
    epoll_ctl(s->relay, EPOLL_CTL_ADD, sock, &e);
    s->sleep_ep = epoll_create1(0);
    struct epoll_event a = {.events = EPOLLIN, .data.u64 = 0};
    epoll_ctl(s->sleep_ep, EPOLL_CTL_ADD, s->efd, &a);
    struct epoll_event b = {.events = EPOLLIN, .data.u64 = 1};
    epoll_ctl(s->sleep_ep, EPOLL_CTL_ADD, s->relay, &b);
}

static void sleep_once(struct side *s) {
    unsigned long mask = 0;
    if (shape == 0) {
        struct pollfd p[2] = {{s->efd, POLLIN, 0}, {s->relay, POLLIN, 0}};
        syscall(SYS_ppoll, p, 2, NULL, &mask, 8);
    } else {
        struct epoll_event ev[2];
        syscall(SYS_epoll_pwait, s->sleep_ep, ev, 2, -1, &mask, 8);
    }
    struct epoll_event r[8];
    epoll_wait(s->relay, r, 8, 0);
}

static void *partner(void *arg) {
    struct side *s = arg;
    char c;
    for (int i = 0; i < ROUNDS; i++) {
        sleep_once(s);
        if (read(s->sock, &c, 1) != 1 || write(s->sock, "x", 1) != 1)
            exit(1);
    }
    return NULL;
}

static int pingpong(void) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return 1;
    struct side a, b;
    setup(&a, sv[0]);
    setup(&b, sv[1]);
    pthread_t t;
    pthread_create(&t, NULL, partner, &b);
    double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
    char c;
    if (write(a.sock, "x", 1) != 1)
        return 1;
    for (int i = 0; i < ROUNDS; i++) {
        sleep_once(&a);
        if (read(a.sock, &c, 1) != 1)
            return 1;
        if (i + 1 < ROUNDS && write(a.sock, "x", 1) != 1)
            return 1;
    }
    pthread_join(t, NULL);
    double w = now(CLOCK_MONOTONIC) - w0, cpu = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
    printf("pingpong %s: round trip %.2f us wall, %.2f us CPU\n",
           shape ? "epoll_pwait of a sleep epoll" : "ppoll [eventfd, relay]", w / ROUNDS * 1e6,
           cpu / ROUNDS * 1e6);
    return 0;
}

static int nested(void) {
    int relay = epoll_create1(0), outer = epoll_create1(0), sv[2];
    if (shape) {
        struct epoll_event e = {.events = EPOLLIN};
        epoll_ctl(outer, EPOLL_CTL_ADD, relay, &e);
    }
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return 1;
    const int n = 200000;
    double best = 1e9;
    for (int r = 0; r < 5; r++) {
        double t0 = now(CLOCK_MONOTONIC);
        for (int i = 0; i < n; i++) {
            struct epoll_event e = {.events = EPOLLIN | EPOLLET};
            if (epoll_ctl(relay, EPOLL_CTL_ADD, sv[0], &e) != 0 ||
                epoll_ctl(relay, EPOLL_CTL_DEL, sv[0], NULL) != 0)
                return 1;
        }
        double d = (now(CLOCK_MONOTONIC) - t0) / n * 1e9;
        if (d < best)
            best = d;
    }
    printf("nested %s: ADD+DEL of a socket into the relay %.0f ns (best of 5 x %d)\n",
           shape ? "(relay watched by another epoll)" : "(relay alone)", best, n);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3 || (strcmp(argv[2], "0") && strcmp(argv[2], "1"))) {
        fprintf(stderr, "usage: %s pingpong|nested 0|1\n", argv[0]);
        return 2;
    }
    shape = atoi(argv[2]);
    if (!strcmp(argv[1], "pingpong"))
        return pingpong();
    if (!strcmp(argv[1], "nested"))
        return nested();
    fprintf(stderr, "usage: %s pingpong|nested 0|1\n", argv[0]);
    return 2;
}
