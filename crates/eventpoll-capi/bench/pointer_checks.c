/*
 * The cost of the library's pointer checks (src/user.rs) as a program sees it: 100,000
 * epoll_wait calls with one ready level-triggered eventfd into a buffer on the caller's
 * stack, then into a heap buffer, then 100,000 epoll_ctl(MOD) with the event on the stack,
 * then on the heap; five passes, nanoseconds per call. A range on the calling thread's own
 * stack needs no probe; a heap one costs one madvise per call. Run it natively and under
 * LD_PRELOAD=libeventpoll.so (two builds in turn to compare them).
 *   cc -O2 -o pointer_checks pointer_checks.c && LD_PRELOAD=.../libeventpoll.so ./pointer_checks
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>

#define N 100000

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(void) {
    int ep = epoll_create1(0), efd = eventfd(1, 0);
    struct epoll_event add = {.events = EPOLLIN}, ev[64];
    if (ep < 0 || efd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, efd, &add) != 0) {
        perror("setup");
        return 1;
    }
    struct epoll_event *heap = malloc(sizeof ev), *hmod = malloc(sizeof add);
    if (!heap || !hmod)
        return 1;
    *hmod = add;
    for (int pass = 0; pass < 5; pass++) {
        double t0 = now_ns();
        for (int i = 0; i < N; i++)
            if (epoll_wait(ep, ev, 64, 0) != 1)
                return 1;
        double t1 = now_ns();
        for (int i = 0; i < N; i++)
            if (epoll_wait(ep, heap, 64, 0) != 1)
                return 1;
        double t2 = now_ns();
        for (int i = 0; i < N; i++)
            if (epoll_ctl(ep, EPOLL_CTL_MOD, efd, &add) != 0)
                return 1;
        double t3 = now_ns();
        for (int i = 0; i < N; i++)
            if (epoll_ctl(ep, EPOLL_CTL_MOD, efd, hmod) != 0)
                return 1;
        double t4 = now_ns();
        printf("pass %d: epoll_wait stack %.0f heap %.0f ns; epoll_ctl MOD stack %.0f heap %.0f ns\n",
               pass, (t1 - t0) / N, (t2 - t1) / N, (t3 - t2) / N, (t4 - t3) / N);
    }
    free(heap);
    free(hmod);
    return 0;
}
