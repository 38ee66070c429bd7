/*
 * A measurement shim, not eventpoll: an LD_PRELOAD library whose epoll_wait leaves the work
 * to the kernel's own epoll but pays part of the system calls libeventpoll's blocking wait
 * makes, to split the cost of the preload in a real server (scripts/capi-floor.sh).
 *
 *   FLOOR_MODE 0  interposition only: epoll_wait is epoll_pwait(..., NULL)
 *   FLOOR_MODE 1  + what the semantics ask of any user-space epoll: signals blocked around
 *                 the wait and applied atomically in its sleep (rt_sigprocmask twice, for
 *                 ep_poll's EINTR), and one store probe of the events slot (getcpu) when
 *                 events are returned
 *   FLOOR_MODE 2  + the shape of a wait that sleeps outside the instance: a harvest that
 *                 finds nothing, a ppoll on the instance, a second harvest
 *
 * Built with cc -O2 -shared -fPIC -DFLOOR_MODE=N.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef FLOOR_MODE
#define FLOOR_MODE 0
#endif

int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout) {
#if FLOOR_MODE == 0
    return (int)syscall(SYS_epoll_pwait, epfd, events, maxevents, timeout, NULL, 8);
#else
    unsigned long all = ~0UL, old = 0;
    syscall(SYS_rt_sigprocmask, SIG_BLOCK, &all, &old, 8);
#if FLOOR_MODE == 1
    long n = syscall(SYS_epoll_pwait, epfd, events, maxevents, timeout, &old, 8);
#else
    long n = syscall(SYS_epoll_pwait, epfd, events, maxevents, 0, NULL, 8);
    if (n == 0 && timeout != 0) {
        struct pollfd p = {.fd = epfd, .events = POLLIN};
        struct timespec ts = {timeout / 1000, (timeout % 1000) * 1000000L};
        long r = syscall(SYS_ppoll, &p, 1, timeout < 0 ? NULL : &ts, &old, 8);
        n = r < 0 ? r : syscall(SYS_epoll_pwait, epfd, events, maxevents, 0, NULL, 8);
    }
#endif
    int saved = errno;
    if (n > 0) {
        unsigned cpu;
        syscall(SYS_getcpu, &cpu, NULL, NULL);
    }
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, NULL, 8);
    errno = saved;
    return (int)n;
#endif
}
