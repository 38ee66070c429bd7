/*
 * eventpoll.h — the C interface of libeventpoll: Linux's epoll on the eventpoll engine.
 *
 * The six calls have exactly the signatures, structure layout and errno values of
 * <sys/epoll.h>; a program written for Linux's epoll compiles against either header and
 * links against libeventpoll (pkg-config --cflags --libs eventpoll; the pkg-config file sets
 * the run path to the installed library, so no LD_LIBRARY_PATH is needed), or runs
 * unmodified with LD_PRELOAD=libeventpoll.so. The library also interposes close,
 * close_range, closefrom, dup, dup2, dup3, fcntl/fcntl64 (F_DUPFD, F_DUPFD_CLOEXEC,
 * F_SETPIPE_SZ), shutdown, poll, ppoll, select and pselect to keep its view of the
 * descriptors true and to pass on the wakeups Linux makes there; those keep their POSIX
 * signatures and are not declared here.
 *
 * Environment: EVENTPOLL_DRIVER=uring|epoll|poll chooses the host driver (default: uring,
 * io_uring multishot polls, where io_uring is allowed; else epoll, a private edge-triggered
 * kernel epoll; else poll); an unknown name is reported on standard error and the default
 * used. EVENTPOLL_LOG=1 traces calls to standard error, EVENTPOLL_LOG=/absolute/path to that
 * file (a path that cannot be used is reported, and standard error used); the first line
 * names the driver in use. EVENTPOLL_FORK=copy: see crates/eventpoll-capi/README.md.
 */
#ifndef EVENTPOLL_H
#define EVENTPOLL_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef _SYS_EPOLL_H /* glibc's guard: the definitions below are the same */

enum EPOLL_EVENTS {
    EPOLLIN = 0x001,
    EPOLLPRI = 0x002,
    EPOLLOUT = 0x004,
    EPOLLRDNORM = 0x040,
    EPOLLRDBAND = 0x080,
    EPOLLWRNORM = 0x100,
    EPOLLWRBAND = 0x200,
    EPOLLMSG = 0x400,
    EPOLLERR = 0x008,
    EPOLLHUP = 0x010,
    EPOLLRDHUP = 0x2000,
    EPOLLEXCLUSIVE = 1u << 28,
    EPOLLWAKEUP = 1u << 29,
    EPOLLONESHOT = 1u << 30,
    EPOLLET = 1u << 31
};
#define EPOLLIN EPOLLIN
#define EPOLLPRI EPOLLPRI
#define EPOLLOUT EPOLLOUT
#define EPOLLRDNORM EPOLLRDNORM
#define EPOLLRDBAND EPOLLRDBAND
#define EPOLLWRNORM EPOLLWRNORM
#define EPOLLWRBAND EPOLLWRBAND
#define EPOLLMSG EPOLLMSG
#define EPOLLERR EPOLLERR
#define EPOLLHUP EPOLLHUP
#define EPOLLRDHUP EPOLLRDHUP
#define EPOLLEXCLUSIVE EPOLLEXCLUSIVE
#define EPOLLWAKEUP EPOLLWAKEUP
#define EPOLLONESHOT EPOLLONESHOT
#define EPOLLET EPOLLET

#define EPOLL_CLOEXEC 02000000
#define EPOLL_CTL_ADD 1
#define EPOLL_CTL_DEL 2
#define EPOLL_CTL_MOD 3

typedef union epoll_data {
    void *ptr;
    int fd;
    uint32_t u32;
    uint64_t u64;
} epoll_data_t;

struct epoll_event {
    uint32_t events;
    epoll_data_t data;
}
#if defined(__x86_64__)
__attribute__((__packed__))
#endif
;

int epoll_create(int size);
int epoll_create1(int flags);
int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event);
int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout);
int epoll_pwait(int epfd, struct epoll_event *events, int maxevents, int timeout,
                const sigset_t *sigmask);
int epoll_pwait2(int epfd, struct epoll_event *events, int maxevents,
                 const struct timespec *timeout, const sigset_t *sigmask);

#endif /* _SYS_EPOLL_H */

/*
 * epoll_pwait in the system call's form, with the size of the signal set (glibc's wrapper
 * always passes 8): a non-NULL sigmask with sigsetsize != 8 is EINVAL, checked first.
 */
int eventpoll_epoll_pwait_sized(int epfd, struct epoll_event *events, int maxevents,
                                int timeout, const sigset_t *sigmask, size_t sigsetsize);

/*
 * A diagnostic, not Linux's ABI: how many system calls the calling thread has made so far
 * to check the program's pointers (madvise(MADV_POPULATE_*), one per range checked). A
 * range in the live part of the calling thread's own stack needs none.
 */
unsigned long eventpoll_user_probes(void);

#ifdef __cplusplus
}
#endif

#endif /* EVENTPOLL_H */
