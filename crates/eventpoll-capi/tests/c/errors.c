/*
 * Error paths and edge cases of the epoll C ABI, with the errno Linux gives.
 *
 * Built four ways by tests/capi.rs: against glibc (the kernel itself: this is what proves
 * the expectations are Linux's), linked with libeventpoll.so (-DEVENTPOLL), linked with
 * libeventpoll.a (-DEVENTPOLL), and the glibc build run under LD_PRELOAD. Every build must
 * pass every check. Prints one line per failure and a closing "N passed, M failed".
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <netinet/in.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef EVENTPOLL
#include "eventpoll.h"
#endif

#include "tally.h"

/* The call returned -1 with errno E. */
#define ERR(call, E)                                                                       \
    do {                                                                                   \
        errno = 0;                                                                         \
        long r_ = (long)(call);                                                            \
        int e_ = errno;                                                                    \
        CHECK(r_ == -1 && e_ == (E), "%s: got %ld errno %d (%s), want %s", #call, r_, e_,   \
              strerror(e_), #E);                                                           \
    } while (0)

/* The call succeeded and left errno as it was (a system call's wrapper does not touch it
 * on success: the library's own probes and sleeps must not show through). */
#define OK(call)                                                                           \
    do {                                                                                   \
        errno = 4242;                                                                      \
        long r_ = (long)(call);                                                            \
        int e_ = errno;                                                                    \
        CHECK(r_ >= 0 && e_ == 4242, "%s: got %ld errno %d (%s)", #call, r_, e_,           \
              strerror(e_));                                                               \
    } while (0)

#define EQ(call, want)                                                                     \
    do {                                                                                   \
        long r_ = (long)(call);                                                            \
        CHECK(r_ == (long)(want), "%s: got %ld want %ld (errno %d)", #call, r_,            \
              (long)(want), errno);                                                        \
    } while (0)

#include "raw_syscalls.c"

static long pwait_sized(int ep, struct epoll_event *ev, int max, int t, const void *mask,
                        size_t size) {
#ifdef EVENTPOLL
    return eventpoll_epoll_pwait_sized(ep, ev, max, t, (const sigset_t *)mask, size);
#else
    return syscall(SYS_epoll_pwait, ep, ev, max, t, mask, size);
#endif
}

static void on_usr1(int sig) { (void)sig; }

struct killer {
    pthread_t target;
    int delay_ms;
};

static void *kill_later(void *arg) {
    struct killer *k = arg;
    usleep(k->delay_ms * 1000);
    pthread_kill(k->target, SIGUSR1);
    return NULL;
}

static long ms_since(struct timespec *t0) {
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

/* A thread blocked in a wait across a fork, woken by a write after it. */
struct waiter {
    int ep, n;
    unsigned long long data;
};

static void *wait_long(void *arg) {
    struct waiter *w = arg;
    struct epoll_event o[2];
    w->n = epoll_wait(w->ep, o, 2, 5000);
    w->data = w->n > 0 ? o[0].data.u64 : 0;
    return NULL;
}

/* fork shares the instance: parent and child hold one open file description, so what one
   does (ctl, harvests that consume edge-triggered and one-shot events) the other sees; and
   what the instance held before the fork (ready-list order, reported edge-triggered items,
   disabled one-shot items, ghost items, nested instances) is the same in both after it. */
static void fork_shares(void) {
    int pa[2], pb[2], pc[2], pd[2], pe[2], pf[2];
    int ok = !pipe2(pa, O_NONBLOCK) && !pipe2(pb, O_NONBLOCK) && !pipe2(pc, O_NONBLOCK) &&
             !pipe2(pd, O_NONBLOCK) && !pipe2(pe, O_NONBLOCK) && !pipe2(pf, O_NONBLOCK);
    CHECK(ok, "pipes");
    int sh = epoll_create1(0), inner = epoll_create1(0);
    CHECK(sh >= 0 && inner >= 0, "epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 1};
    OK(epoll_ctl(sh, EPOLL_CTL_ADD, pa[0], &ev));
    ev.data.u64 = 2;
    OK(epoll_ctl(sh, EPOLL_CTL_ADD, pb[0], &ev));
    ev = (struct epoll_event){.events = EPOLLIN | EPOLLET, .data.u64 = 3};
    OK(epoll_ctl(sh, EPOLL_CTL_ADD, pc[0], &ev));
    ev = (struct epoll_event){.events = EPOLLIN | EPOLLONESHOT, .data.u64 = 4};
    OK(epoll_ctl(sh, EPOLL_CTL_ADD, pd[0], &ev));
    EQ(write(pc[1], "c", 1), 1);
    EQ(write(pd[1], "d", 1), 1);
    struct epoll_event o[8];
    EQ(epoll_wait(sh, o, 8, 0), 2); /* 3 is reported (edge taken), 4 fires (disabled) */
    /* The poll driver sees levels only: it reports an edge-triggered item again while its
       input is there (README, deviation 10), so there 3's input is read now. */
    const char *driver = getenv("EVENTPOLL_DRIVER");
    if (driver && !strcmp(driver, "poll")) {
        char c3;
        EQ(read(pc[0], &c3, 1), 1);
    }
    EQ(write(pb[1], "b", 1), 1);    /* ready list: 2, then 1 */
    EQ(epoll_wait(sh, o, 8, 0), 1); /* (so that even the poll driver knows the order) */
    EQ(write(pa[1], "a", 1), 1);
    int g = dup(pe[0]); /* a ghost: added by a number closed since */
    CHECK(g >= 0, "dup");
    ev = (struct epoll_event){.events = EPOLLIN, .data.u64 = 5};
    OK(epoll_ctl(sh, EPOLL_CTL_ADD, g, &ev));
    OK(close(g));
    ev.data.u64 = 60;
    OK(epoll_ctl(inner, EPOLL_CTL_ADD, pf[0], &ev));
    ev.data.u64 = 6;
    OK(epoll_ctl(sh, EPOLL_CTL_ADD, inner, &ev));
    int efd = eventfd(1, EFD_NONBLOCK);
    CHECK(efd >= 0, "eventfd");

    pid_t pid = fork();
    if (pid == 0) {
        int bad = 0;
        char c;
        struct epoll_event q[8];
        int n = epoll_wait(sh, q, 8, 0);
        if (n != 2 || q[0].data.u64 != 2 || q[1].data.u64 != 1) bad |= 1;
        if (read(pb[0], &c, 1) != 1) bad |= 2; /* 2 is no longer ready, in both */
        if (write(pe[1], "e", 1) != 1) bad |= 4; /* the ghost reports */
        struct epoll_event x = {.events = EPOLLIN, .data.u64 = 77};
        if (epoll_ctl(sh, EPOLL_CTL_ADD, efd, &x)) bad |= 8; /* the parent sees it */
        x = (struct epoll_event){.events = EPOLLIN | EPOLLONESHOT, .data.u64 = 44};
        if (epoll_ctl(sh, EPOLL_CTL_MOD, pd[0], &x)) bad |= 16; /* re-armed for both */
        x = (struct epoll_event){.events = EPOLLIN | EPOLLET, .data.u64 = 3};
        if (epoll_ctl(sh, EPOLL_CTL_ADD, pc[0], &x) != -1 || errno != EEXIST) bad |= 32;
        _exit(bad);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "fork_shares child: status %#x",
          status);
    /* 1 (still ready), the ghost 5, the child's 77, the re-armed 44; not 2 (read), not 3 */
    int n = epoll_wait(sh, o, 8, 0);
    CHECK(n == 4 && o[0].data.u64 == 1 && o[1].data.u64 == 5 && o[2].data.u64 == 77 &&
              o[3].data.u64 == 44,
          "after the child: got %d: %llu %llu %llu %llu", n, (unsigned long long)o[0].data.u64,
          (unsigned long long)o[1].data.u64, (unsigned long long)o[2].data.u64,
          (unsigned long long)o[3].data.u64);
    /* the nested instance reports through the outer one (44 fired: disabled again) */
    EQ(write(pf[1], "f", 1), 1);
    n = epoll_wait(sh, o, 8, 0);
    CHECK(n == 4 && o[3].data.u64 == 6, "nested after fork: got %d, last %llu", n,
          (unsigned long long)o[n > 0 ? n - 1 : 0].data.u64);
    EQ(epoll_wait(inner, o, 8, 0), 1);

    /* a thread asleep in a wait across a fork is woken by a write after it */
    int ph[2];
    OK(pipe2(ph, O_NONBLOCK));
    int lone = epoll_create1(0);
    ev = (struct epoll_event){.events = EPOLLIN, .data.u64 = 99};
    OK(epoll_ctl(lone, EPOLL_CTL_ADD, ph[0], &ev));
    struct waiter w = {.ep = lone};
    pthread_t t;
    pthread_create(&t, NULL, wait_long, &w);
    usleep(50000);
    pid = fork();
    if (pid == 0)
        _exit(0);
    waitpid(pid, &status, 0);
    usleep(20000);
    EQ(write(ph[1], "h", 1), 1);
    pthread_join(t, NULL);
    CHECK(w.n == 1 && w.data == 99, "waiter across fork: %d, %llu", w.n, w.data);

    /* a child that exits at once holds no file after its exit: the parent's close of a
       watched write end is seen by the reader at once (EOF, not EAGAIN) */
    int late = 0;
    for (int i = 0; i < 20; i++) {
        int pw[2];
        OK(pipe2(pw, O_NONBLOCK));
        int epw = epoll_create1(0);
        ev = (struct epoll_event){.events = EPOLLOUT, .data.u64 = 1};
        OK(epoll_ctl(epw, EPOLL_CTL_ADD, pw[1], &ev));
        pid = fork();
        if (pid == 0)
            _exit(0);
        waitpid(pid, &status, 0);
        close(pw[1]);
        char c;
        late += read(pw[0], &c, 1) != 0;
        close(pw[0]);
        close(epw);
    }
    CHECK(late == 0, "reader saw the writer's close late %d times of 20", late);

    int fds[] = {pa[0], pa[1], pb[0], pb[1], pc[0], pc[1], pd[0], pd[1], pe[0], pe[1],
                 pf[0], pf[1], ph[0], ph[1], sh, inner, efd, lone};
    for (unsigned i = 0; i < sizeof fds / sizeof fds[0]; i++)
        close(fds[i]);
}

/* Calls whose glibc wrapper reads a timespec itself (and so crashes natively on a bad one):
   natively the raw system call, which is the kernel's answer. */
#ifdef EVENTPOLL
#define PPOLL(f, n, t, m) ppoll(f, n, t, m)
#define PWAIT2(a, b, c, d, m) epoll_pwait2(a, b, c, d, m)
#else
#define PPOLL(f, n, t, m) syscall(SYS_ppoll, f, n, t, m, 8)
#define PWAIT2(a, b, c, d, m) syscall(SYS_epoll_pwait2, a, b, c, d, m, 8)
#endif

/* Invalid user pointers are EFAULT (or the count stored before the first bad slot), never a
   crash: an unmapped-for-access (PROT_NONE) page, a read-only one, a non-canonical address,
   a record straddling into a PROT_NONE page, the end of user space. */
static void bad_pointers(void) {
    long pg = sysconf(_SC_PAGESIZE);
    char *m = mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED, "mmap");
    char *none = m + pg, *ro = m + 2 * pg;
    memset(m, 0, 3 * pg);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 1}, out[8];
    memcpy(ro, &ev, 12); /* read below through a read-only page */
    OK(mprotect(none, pg, PROT_NONE));
    OK(mprotect(ro, pg, PROT_READ));
    void *noncanon = (void *)0x8000000000000000ul;
    int p1[2], p2[2], p3[2];
    OK(pipe2(p1, O_NONBLOCK));
    OK(pipe2(p2, O_NONBLOCK));
    OK(pipe2(p3, O_NONBLOCK));
    int ep = epoll_create1(0);
    CHECK(ep >= 0, "epoll_create1");

    /* epoll_ctl: the event is read first (EFAULT before EBADF), except by DEL */
    ERR(epoll_ctl(ep, EPOLL_CTL_ADD, p1[0], (struct epoll_event *)none), EFAULT);
    ERR(epoll_ctl(ep, EPOLL_CTL_ADD, p1[0], (struct epoll_event *)noncanon), EFAULT);
    ERR(epoll_ctl(ep, EPOLL_CTL_ADD, p1[0], (struct epoll_event *)(none - 6)), EFAULT);
    ERR(epoll_ctl(-1, EPOLL_CTL_MOD, p1[0], (struct epoll_event *)none), EFAULT);
    ERR(epoll_ctl(ep, 99, 4000, (struct epoll_event *)none), EFAULT);
    memcpy(none - 12, &ev, 12); /* a record that ends just before the PROT_NONE page */
    OK(epoll_ctl(ep, EPOLL_CTL_ADD, p1[0], (struct epoll_event *)(none - 12)));
    OK(epoll_ctl(ep, EPOLL_CTL_DEL, p1[0], (struct epoll_event *)none));
    OK(epoll_ctl(ep, EPOLL_CTL_ADD, p1[0], (struct epoll_event *)ro));
    ev.data.u64 = 2;
    OK(epoll_ctl(ep, EPOLL_CTL_ADD, p2[0], &ev));
    ev.data.u64 = 3;
    OK(epoll_ctl(ep, EPOLL_CTL_ADD, p3[0], &ev));

    /* waits with nothing ready: only the range check (access_ok) faults */
    EQ(epoll_wait(ep, (struct epoll_event *)none, 4, 0), 0);
    ERR(epoll_wait(ep, (struct epoll_event *)noncanon, 4, 0), EFAULT);
    ERR(epoll_wait(ep, (struct epoll_event *)(0x7ffffffff000ul - 12), 2, 0), EFAULT);
    ERR(epoll_wait(-1, (struct epoll_event *)noncanon, 4, 0), EBADF); /* EBADF first */
    ERR(epoll_wait(ep, (struct epoll_event *)noncanon, 0, 0), EINVAL); /* maxevents first */

    /* with events ready: EFAULT when not one fits; the events stay ready */
    EQ(write(p1[1], "x", 1), 1);
    EQ(write(p2[1], "x", 1), 1);
    EQ(write(p3[1], "x", 1), 1);
    ERR(epoll_wait(ep, (struct epoll_event *)none, 4, 0), EFAULT);
    ERR(epoll_wait(ep, (struct epoll_event *)ro, 4, 0), EFAULT);
    ERR(epoll_wait(ep, (struct epoll_event *)(none - 6), 4, 0), EFAULT);
    /* the ready list's order (level-triggered: each report goes back to its end) */
    EQ(epoll_wait(ep, out, 8, 0), 3);
    unsigned long long x = out[0].data.u64, y = out[1].data.u64, z = out[2].data.u64;
    /* one slot before the PROT_NONE page: one event; the one that did not fit stays first */
    struct epoll_event *one = (struct epoll_event *)(none - 12);
    EQ(epoll_wait(ep, one, 4, 0), 1);
    CHECK(one->data.u64 == x, "first slot: %llu, want %llu", (unsigned long long)one->data.u64,
          x);
    EQ(epoll_wait(ep, out, 8, 0), 3);
    CHECK(out[0].data.u64 == y && out[1].data.u64 == z && out[2].data.u64 == x,
          "after a short buffer: %llu %llu %llu, want %llu %llu %llu",
          (unsigned long long)out[0].data.u64, (unsigned long long)out[1].data.u64,
          (unsigned long long)out[2].data.u64, y, z, x);
    /* a slot straddling into the page: Linux stores its bits (they fit), not its data */
    memset(none - 20, 0xAA, 20);
    EQ(epoll_wait(ep, (struct epoll_event *)(none - 20), 4, 0), 1);
    uint32_t bits;
    memcpy(&bits, none - 8, 4);
    CHECK(bits == EPOLLIN, "straddling slot's bits: %#x", bits);
    unsigned char data_bytes[8];
    memcpy(data_bytes, none - 4, 4);
    CHECK(data_bytes[0] == 0xAA, "straddling slot's data: untouched");
    EQ(epoll_wait(ep, out, 8, 0), 3);
    CHECK(out[0].data.u64 == z && out[1].data.u64 == x && out[2].data.u64 == y,
          "after a straddling slot: %llu %llu %llu, want %llu %llu %llu",
          (unsigned long long)out[0].data.u64, (unsigned long long)out[1].data.u64,
          (unsigned long long)out[2].data.u64, z, x, y);

    /* epoll_pwait2's timespec is read before anything else; the signal set before EBADF */
    ERR(PWAIT2(-1, out, 8, (struct timespec *)none, NULL), EFAULT);
    ERR(PWAIT2(ep, out, 8, (struct timespec *)noncanon, NULL), EFAULT);
    ERR(PWAIT2(ep, out, 8, (struct timespec *)(none - 8), NULL), EFAULT);
    ERR(PWAIT2(-1, out, 0, NULL, (sigset_t *)none), EFAULT);
    ERR(epoll_pwait(4000, out, 8, 0, (sigset_t *)none), EFAULT);
    ERR(epoll_pwait(ep, out, 8, 0, (sigset_t *)none), EFAULT);

    /* poll/ppoll/select with an instance among bad memory */
    struct pollfd *rp = (struct pollfd *)(none - sizeof(struct pollfd));
    rp->fd = ep; /* the last record before the PROT_NONE page */
    rp->events = POLLIN;
    EQ(poll(rp, 1, 0), 1);
    CHECK(rp->revents == POLLIN, "poll revents %#x", rp->revents);
    OK(mprotect(ro, pg, PROT_READ | PROT_WRITE));
    struct pollfd *rq = (struct pollfd *)ro;
    rq->fd = ep;
    rq->events = POLLIN;
    OK(mprotect(ro, pg, PROT_READ));
    ERR(poll(rq, 1, 0), EFAULT); /* polled, but revents cannot be stored */
    ERR(poll((struct pollfd *)none, 1, 0), EFAULT);
    ERR(poll((struct pollfd *)(none - 4), 1, 0), EFAULT);
    struct pollfd pf = {.fd = ep, .events = POLLIN};
    ERR(PPOLL(&pf, 1, (struct timespec *)none, NULL), EFAULT);
    ERR(PPOLL(&pf, 1, NULL, (sigset_t *)none), EFAULT);
    fd_set rs;
    FD_ZERO(&rs);
    FD_SET(ep, &rs);
    ERR(select(ep + 1, (fd_set *)none, NULL, NULL, NULL), EFAULT);
    OK(mprotect(ro, pg, PROT_READ | PROT_WRITE));
    memcpy(ro, &rs, sizeof rs);
    OK(mprotect(ro, pg, PROT_READ));
    struct timeval tv0 = {0, 0};
    ERR(select(ep + 1, (fd_set *)ro, NULL, NULL, &tv0), EFAULT);
    struct timespec ts0 = {0, 0};
    ERR(pselect(ep + 1, (fd_set *)ro, NULL, NULL, &ts0, NULL), EFAULT);

    close(ep);
    int fds[] = {p1[0], p1[1], p2[0], p2[1], p3[0], p3[1]};
    for (unsigned i = 0; i < sizeof fds / sizeof fds[0]; i++)
        close(fds[i]);
    munmap(m, 3 * pg);
}

/* A wait into a buffer on the heap (not the caller's stack: the library probes it) writes
   the events' slots and not one byte more: the rest of the buffer, and a slot's bytes left
   by an event that did not come, keep what the program put there (the library's probe
   stores into the slot it is about to write, never beyond). */
static void heap_buffer_bytes_beyond_the_events(void) {
    long pg = sysconf(_SC_PAGESIZE);
    unsigned char *m = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED, "mmap");
    int p[2], q[2];
    OK(pipe2(p, O_NONBLOCK));
    OK(pipe2(q, O_NONBLOCK));
    int ep = epoll_create1(0);
    CHECK(ep >= 0, "epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0x1122334455667788ull};
    OK(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
    ev.data.u64 = 2;
    OK(epoll_ctl(ep, EPOLL_CTL_ADD, q[0], &ev));
    /* Nothing ready: nothing written. */
    memset(m, 0xAA, 2 * pg);
    EQ(epoll_wait(ep, (struct epoll_event *)m, 8, 0), 0);
    int untouched = 1;
    for (long i = 0; i < 2 * pg; i++)
        untouched &= m[i] == 0xAA;
    CHECK(untouched, "heap buffer written with nothing ready");
    /* One ready: its 12 bytes, nothing after them; a slot straddling the two pages too. */
    EQ(write(p[1], "x", 1), 1);
    for (int round = 0; round < 2; round++) {
        unsigned char *buf = round == 0 ? m : m + pg - 4;
        memset(m, 0xAA, 2 * pg);
        EQ(epoll_wait(ep, (struct epoll_event *)buf, 8, 0), 1);
        struct epoll_event got;
        memcpy(&got, buf, sizeof got);
        CHECK(got.events == EPOLLIN && got.data.u64 == 0x1122334455667788ull,
              "heap slot: %#x %llx", got.events, (unsigned long long)got.data.u64);
        untouched = 1;
        for (long i = 0; i < 2 * pg; i++)
            if (m + i < buf || m + i >= buf + sizeof(struct epoll_event))
                untouched &= m[i] == 0xAA;
        CHECK(untouched, "heap buffer written beyond the one event (round %d)", round);
    }
    close(p[0]);
    close(p[1]);
    close(q[0]);
    close(q[1]);
    close(ep);
    munmap(m, 2 * pg);
}

/* Open descriptors at or above 1000 (the library's own live there; this program's not). */
static int high_fds(int *out, int max) {
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int fd = atoi(e->d_name);
        if (fd >= 1000 && fd != dirfd(d) && n < max)
            out[n++] = fd;
    }
    closedir(d);
    return n;
}

/* A number closed where the library cannot see it (glibc's closedir after fdopendir of a
   dup the library made) and reused by a socket: adding the socket is 0, as on Linux (it
   was EPERM: the library still took the number for the directory). uvloop's and Python's
   tempfile cleanup do this. */
static void unseen_close_of_a_directory(void) {
    int ep = epoll_create1(0);
    int d = open("/tmp", O_RDONLY | O_DIRECTORY);
    CHECK(ep >= 0 && d >= 0, "epoll_create1 and open(/tmp)");
    int d2 = fcntl(d, F_DUPFD_CLOEXEC, 0);
    CHECK(d2 >= 0, "F_DUPFD_CLOEXEC of a directory");
    DIR *dir = fdopendir(d2);
    CHECK(dir != NULL, "fdopendir");
    closedir(dir);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(s == d2, "the socket reuses the directory's number (%d, %d)", s, d2);
    struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = 5};
    OK(epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev));
    struct epoll_event out[2];
    EQ(epoll_wait(ep, out, 2, 0), 1);
    CHECK(out[0].data.u64 == 5, "the socket's event");
    close(s);
    close(d);
    close(ep);
}

/* The library's own descriptors look closed: a new instance's bell (the library's) or,
   natively, a closed number inside the descriptor table. */
static void hidden_fds(void) {
    int before[64], after[64], hid[64], nh = 0;
    int nb = high_fds(before, 64);
    int e = epoll_create1(0);
    CHECK(e >= 0, "epoll_create1");
    int na = high_fds(after, 64);
    for (int i = 0; i < na; i++) {
        int seen = 0;
        for (int j = 0; j < nb; j++)
            seen |= after[i] == before[j];
        if (!seen)
            hid[nh++] = after[i];
    }
#ifdef EVENTPOLL
    CHECK(nh > 0, "a new instance has a hidden bell");
#endif
    if (nh == 0) { /* natively: a closed number the table covers */
        OK(dup2(0, 5000));
        OK(close(5000));
        hid[nh++] = 5000;
    }
    uint64_t one = 1;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 1}, out[4];
    long pg = sysconf(_SC_PAGESIZE);
    char *none = mmap(NULL, pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (int i = 0; i < nh; i++) {
        int h = hid[i];
        struct pollfd pf = {.fd = h, .events = POLLIN | POLLOUT};
        EQ(poll(&pf, 1, 0), 1);
        CHECK(pf.revents == POLLNVAL, "poll(hidden %d) revents %#x", h, pf.revents);
        pf.revents = 0;
        EQ(poll(&pf, 1, 1000), 1); /* at once, not after the timeout */
        ERR(fcntl(h, F_GETFD), EBADF);
        ERR(fcntl(h, F_SETFL, O_NONBLOCK), EBADF);
        ERR(write(h, &one, 8), EBADF);
        ERR(read(h, &one, 8), EBADF);
        ERR(epoll_ctl(0, EPOLL_CTL_DEL, h, NULL), EBADF);
        ERR(epoll_ctl(e, EPOLL_CTL_ADD, h, &ev), EBADF);
        ERR(epoll_ctl(h, EPOLL_CTL_ADD, 0, &ev), EBADF);
        ERR(epoll_ctl(h, EPOLL_CTL_ADD, 0, (struct epoll_event *)none), EFAULT);
        ERR(epoll_wait(h, out, 4, 0), EBADF);
        ERR(epoll_pwait(h, out, 4, 0, (sigset_t *)none), EFAULT);
        ERR(close(h), EBADF);
        ERR(dup(h), EBADF);
        unsigned long set[(5000 + 64 * 1024) / 64 + 1];
        if (h < (int)(sizeof set * 8)) {
            memset(set, 0, sizeof set);
            set[h / 64] |= 1ul << (h % 64);
            struct timeval tv = {0, 0};
            ERR(select(h + 1, (fd_set *)set, NULL, NULL, &tv), EBADF);
        }
    }
    /* the bell was not rung: the instance's kernel descriptor is not readable */
    struct pollfd pe = {.fd = e, .events = POLLIN};
    EQ(syscall(SYS_poll, &pe, 1, 0), 0);
    EQ(epoll_wait(e, out, 4, 0), 0);
    close(e);
    munmap(none, pg);
}

/* shutdown(SHUT_WR) of a loopback TCP socket: the FIN reaches the peer during the call, and
   Linux wakes the socket itself (key-less, at the end of inet_shutdown, then again when the
   peer's ACK is processed) after the peer: both edge-triggered items are reported, the
   peer's first. */
static void tcp_shutdown_wakes_peer_first(void) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(l >= 0 && bind(l, (struct sockaddr *)&a, sizeof a) == 0 && listen(l, 4) == 0 &&
              getsockname(l, (struct sockaddr *)&a, &len) == 0,
          "tcp listener");
    int c = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(c >= 0 && connect(c, (struct sockaddr *)&a, sizeof a) == 0, "tcp connect");
    int s = accept(l, NULL, NULL);
    CHECK(s >= 0, "tcp accept");
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.u64 = 1};
    OK(epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev));
    ev.data.u64 = 2;
    OK(epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev));
    struct epoll_event out[4];
    EQ(epoll_wait(ep, out, 4, 0), 2); /* both writable at ADD */
    OK(shutdown(c, SHUT_WR));
    /* Loopback delivery normally happens during the call; allow it a moment otherwise. */
    int n = 0;
    for (int i = 0; i < 100 && n < 2; i++) {
        int k = epoll_wait(ep, out + n, 4 - n, 10);
        if (k > 0)
            n += k;
    }
    CHECK(n == 2 && out[0].data.u64 == 2 && out[1].data.u64 == 1,
          "tcp shutdown: %d events, first %llu (want the peer's, 2, then 1)", n,
          (unsigned long long)out[0].data.u64);
    close(ep);
    close(s);
    close(c);
    close(l);
}

/* A vfork child that closes numbers before its _exit closes its own table's (Linux copies the
   descriptor table into it): the parent's numbers stay open and its item still reports. The
   library tells the child apart only for numbers it knows (a getpid then); a number it does
   not know is closed alike by both. */
static void vfork_child_closes(void) {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int p[2];
    int ok = ep >= 0 && pipe2(p, O_NONBLOCK) == 0;
    CHECK(ok, "vfork_child_closes: epoll_create1, pipe2");
    if (!ok)
        return;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 42};
    OK(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
    int plain = open("/dev/null", O_RDONLY);
    CHECK(plain >= 0, "open /dev/null");
    pid_t pid = vfork();
    if (pid == 0) {
        close(p[0]);  /* the watched number */
        close(plain); /* one the library does not know */
        _exit(0);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
              WEXITSTATUS(status) == 0,
          "vfork child: status %#x", status);
    CHECK(fcntl(p[0], F_GETFD) >= 0 && fcntl(plain, F_GETFD) >= 0,
          "the parent's numbers are still open after the vfork child closed its copies");
    CHECK(write(p[1], "x", 1) == 1, "write");
    struct epoll_event out[2];
    int n = epoll_wait(ep, out, 2, 1000);
    CHECK(n == 1 && out[0].data.u64 == 42, "the parent's item after the child's close: %d", n);
    close(plain);
    close(p[0]);
    close(p[1]);
    close(ep);
}

/* A call that succeeds leaves errno alone, whatever the library did on the way: waits that
 * time out (the host sleep's ETIME), that apply a signal mask (the probe's EINVAL), that
 * return at once (the buffer's probe), polls and selects of an instance. */
static void success_keeps_errno(void) {
    int ep = epoll_create1(0), efd = eventfd(0, EFD_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN}, out[4];
    struct timespec ts = {0, 20 * 1000 * 1000};
    struct timeval tv = {0, 20 * 1000};
    sigset_t none;
    sigemptyset(&none);
    OK(epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev));
    OK(epoll_wait(ep, out, 4, 0));
    OK(epoll_wait(ep, out, 4, 20));
    OK(epoll_pwait(ep, out, 4, 0, &none));
    OK(epoll_pwait(ep, out, 4, 20, &none));
    OK(epoll_pwait2(ep, out, 4, &ts, NULL));
    OK(epoll_pwait2(ep, out, 4, &ts, &none));
    struct pollfd pf = {ep, POLLIN, 0};
    OK(poll(&pf, 1, 0));
    OK(poll(&pf, 1, 20));
    OK(ppoll(&pf, 1, &ts, &none));
    fd_set rs;
    FD_ZERO(&rs);
    FD_SET(ep, &rs);
    OK(select(ep + 1, &rs, NULL, NULL, &tv));
    FD_ZERO(&rs);
    FD_SET(ep, &rs);
    OK(pselect(ep + 1, &rs, NULL, NULL, &ts, &none));
    uint64_t one = 1;
    OK(write(efd, &one, 8));
    OK(epoll_wait(ep, out, 4, -1));
    OK(epoll_wait(ep, out, 4, 20));
    OK(poll(&pf, 1, -1));
    OK(epoll_ctl(ep, EPOLL_CTL_MOD, efd, &ev));
    OK(epoll_ctl(ep, EPOLL_CTL_DEL, efd, NULL));
    int d = dup(ep);
    OK(d);
    OK(close(d));
    OK(close(efd));
    OK(close(ep));
}

int main(void) {
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 7};
    struct epoll_event out[8];
    int p[2], q[2];
    signal(SIGPIPE, SIG_IGN);

    /* epoll_create / epoll_create1 */
    ERR(epoll_create(0), EINVAL);
    ERR(epoll_create(-5), EINVAL);
    ERR(epoll_create1(1), EINVAL);
    ERR(epoll_create1(O_NONBLOCK), EINVAL);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    CHECK(ep >= 0, "epoll_create1(EPOLL_CLOEXEC)");
    CHECK(fcntl(ep, F_GETFD) == FD_CLOEXEC, "EPOLL_CLOEXEC sets FD_CLOEXEC");
    int ep2 = epoll_create(1);
    CHECK(ep2 >= 0 && fcntl(ep2, F_GETFD) == 0, "epoll_create(1) without cloexec");

    OK(pipe2(p, O_NONBLOCK));
    OK(pipe2(q, O_NONBLOCK));
    int reg = memfd_create("eventpoll-errors", 0);
    CHECK(reg >= 0, "memfd");

    /* epoll_ctl: EFAULT first, then EBADF epfd, EBADF fd, EPERM, EINVAL */
    ERR(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], NULL), EFAULT);
    ERR(epoll_ctl(-1, EPOLL_CTL_ADD, p[0], NULL), EFAULT);
    ERR(epoll_ctl(ep, EPOLL_CTL_MOD, p[0], NULL), EFAULT);
    ERR(epoll_ctl(ep, 99, p[0], NULL), EFAULT);
    ERR(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], (struct epoll_event *)8), EFAULT);
    ERR(epoll_ctl(-1, EPOLL_CTL_ADD, p[0], &ev), EBADF);
    ERR(epoll_ctl(4000, EPOLL_CTL_ADD, p[0], &ev), EBADF);
    ERR(epoll_ctl(ep, EPOLL_CTL_ADD, -1, &ev), EBADF);
    ERR(epoll_ctl(ep, EPOLL_CTL_ADD, 4000, &ev), EBADF);
    ERR(epoll_ctl(ep, EPOLL_CTL_DEL, 4000, NULL), EBADF);
    ERR(epoll_ctl(ep, EPOLL_CTL_ADD, reg, &ev), EPERM);
    ERR(epoll_ctl(p[0], EPOLL_CTL_ADD, reg, &ev), EPERM);
    /* EPERM follows poll support, not the file type: a regular file that can be polled is
       accepted, a device that cannot is refused. The poll driver can only go by the type
       (README, deviation 10). */
    {
        const char *drv = getenv("EVENTPOLL_DRIVER");
        if (!(drv && !strcmp(drv, "poll"))) {
            int mounts = open("/proc/self/mounts", O_RDONLY);
            int devnull = open("/dev/null", O_RDONLY);
            CHECK(mounts >= 0 && devnull >= 0, "open /proc/self/mounts, /dev/null");
            OK(epoll_ctl(ep, EPOLL_CTL_ADD, mounts, &ev));
            ERR(epoll_ctl(ep, EPOLL_CTL_ADD, devnull, &ev), EPERM);
            OK(epoll_ctl(ep, EPOLL_CTL_DEL, mounts, NULL));
            close(mounts);
            close(devnull);
        }
    }
    ERR(epoll_ctl(p[0], EPOLL_CTL_ADD, q[0], &ev), EINVAL);
    ERR(epoll_ctl(ep, EPOLL_CTL_ADD, ep, &ev), EINVAL);
    ERR(epoll_ctl(ep, 99, p[0], &ev), EINVAL);
    ERR(epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev), ENOENT);
    ERR(epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL), ENOENT);
    OK(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
    ERR(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev), EEXIST);
    OK(epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL));

    /* EPOLLEXCLUSIVE rules */
    struct epoll_event ex = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.u64 = 1};
    ERR(epoll_ctl(ep, EPOLL_CTL_ADD, ep2, &ex), EINVAL);
    struct epoll_event exbad = {.events = EPOLLIN | EPOLLEXCLUSIVE | EPOLLONESHOT};
    ERR(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &exbad), EINVAL);
    OK(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ex));
    ERR(epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev), EINVAL);
    ERR(epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ex), EINVAL);
    OK(epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL));

    /* nesting: cycles are ELOOP */
    OK(epoll_ctl(ep, EPOLL_CTL_ADD, ep2, &ev));
    ERR(epoll_ctl(ep2, EPOLL_CTL_ADD, ep, &ev), ELOOP);
    OK(epoll_ctl(ep, EPOLL_CTL_DEL, ep2, NULL));

    /* waits: EBADF before maxevents; maxevents; not an instance */
    ERR(epoll_wait(-1, out, 8, 0), EBADF);
    ERR(epoll_wait(4000, out, 0, 0), EBADF);
    ERR(epoll_wait(ep, out, 0, 0), EINVAL);
    ERR(epoll_wait(ep, out, -1, 0), EINVAL);
    ERR(epoll_wait(ep, out, INT32_MAX / (int)sizeof(struct epoll_event) + 1, 0), EINVAL);
    ERR(epoll_wait(p[0], out, 8, 0), EINVAL);
    ERR(epoll_wait(reg, out, 8, 0), EINVAL);
    EQ(epoll_wait(ep, out, 8, 0), 0);

    /* NULL events: fine while nothing is ready; EFAULT with an event, which stays ready */
    EQ(epoll_wait(ep, NULL, 1, 0), 0);
    OK(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
    EQ(write(p[1], "x", 1), 1);
    ERR(epoll_wait(ep, NULL, 1, 0), EFAULT);
    ERR(epoll_wait(ep, (struct epoll_event *)16, 1, 0), EFAULT);
    EQ(epoll_wait(ep, out, 8, 0), 1);
    CHECK(out[0].data.u64 == 7 && out[0].events == EPOLLIN, "event after EFAULT");

    /* epoll_pwait: the signal-set size is checked first, only with a mask */
    uint64_t mask[16] = {0};
    ERR(pwait_sized(4000, out, 8, 0, mask, 7), EINVAL);
    ERR(pwait_sized(-1, out, 0, 0, mask, 4), EINVAL);
    ERR(pwait_sized(4000, out, 8, 0, NULL, 7), EBADF);
    EQ(pwait_sized(ep, out, 8, 0, NULL, 7), 1);
    EQ(pwait_sized(ep, out, 8, 0, mask, 8), 1);
    ERR(pwait_sized(ep, out, 8, 0, (void *)8, 8), EFAULT);

    /* epoll_pwait2: the timespec first, even before EBADF and maxevents */
    struct timespec bad1 = {.tv_sec = 0, .tv_nsec = -1};
    struct timespec bad2 = {.tv_sec = 0, .tv_nsec = 1000000000};
    struct timespec bad3 = {.tv_sec = -1, .tv_nsec = 0};
    struct timespec zero = {0, 0};
    ERR(syscall(SYS_epoll_pwait2, -1, out, 8, &bad1, NULL, 8), EINVAL);
#ifdef EVENTPOLL
#define PW2(a, b, c, d) epoll_pwait2(a, b, c, d, NULL)
#else
#define PW2(a, b, c, d) syscall(SYS_epoll_pwait2, a, b, c, d, NULL, 8)
#endif
    ERR(PW2(-1, out, 8, &bad1), EINVAL);
    ERR(PW2(4000, out, 0, &bad2), EINVAL);
    ERR(PW2(ep, out, 8, &bad3), EINVAL);
    ERR(PW2(4000, out, 8, &zero), EBADF);
    ERR(PW2(ep, out, 0, &zero), EINVAL);
    EQ(PW2(ep, out, 8, &zero), 1);
    EQ(PW2(ep, out, 8, NULL), 1); /* NULL: no limit, but something is ready */

    /* timeouts are honoured */
    char buf[16];
    EQ(read(p[0], buf, sizeof buf), 1);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    EQ(epoll_wait(ep, out, 8, 50), 0);
    CHECK(ms_since(&t0) >= 50, "epoll_wait(50 ms) slept %ld ms", ms_since(&t0));
    struct timespec t30 = {0, 30000000};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    EQ(PW2(ep, out, 8, &t30), 0);
    CHECK(ms_since(&t0) >= 30, "epoll_pwait2(30 ms) slept %ld ms", ms_since(&t0));

    /* a signal interrupts a blocked wait with EINTR, even with SA_RESTART */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    struct killer k = {.target = pthread_self(), .delay_ms = 50};
    pthread_t th;
    pthread_create(&th, NULL, kill_later, &k);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ERR(epoll_wait(ep, out, 8, 5000), EINTR);
    CHECK(ms_since(&t0) < 4000, "EINTR came after %ld ms", ms_since(&t0));
    pthread_join(th, NULL);

    /* epoll_pwait applies its mask while blocked: SIGUSR1 blocked -> no EINTR */
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    k.delay_ms = 30;
    pthread_create(&th, NULL, kill_later, &k);
    EQ(epoll_pwait(ep, out, 8, 150, &block), 0);
    pthread_join(th, NULL);
    /* ... and the signal, pending, is delivered after the call; a mask that lets it
     * through gives EINTR at once. */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_BLOCK, &block, NULL);
    pthread_kill(pthread_self(), SIGUSR1);
    ERR(epoll_pwait(ep, out, 8, 5000, &none), EINTR);
    sigprocmask(SIG_UNBLOCK, &block, NULL);

    /* the instance's descriptor: readable exactly when an item is ready, never writable */
    struct pollfd pf = {.fd = ep, .events = POLLIN | POLLOUT};
    EQ(poll(&pf, 1, 0), 0);
    EQ(write(p[1], "y", 1), 1);
    EQ(poll(&pf, 1, 0), 1);
    CHECK(pf.revents == POLLIN, "poll(epfd) revents %#x", pf.revents);
    EQ(read(p[0], buf, sizeof buf), 1);
    EQ(poll(&pf, 1, 0), 0);
    /* a blocking poll on it is woken by the pipe */
    k.delay_ms = 0;
    EQ(write(p[1], "z", 1), 1);
    EQ(poll(&pf, 1, 1000), 1);
    EQ(read(p[0], buf, sizeof buf), 1);
    /* select too */
    fd_set rs;
    FD_ZERO(&rs);
    FD_SET(ep, &rs);
    struct timeval tv = {0, 0};
    EQ(select(ep + 1, &rs, NULL, NULL, &tv), 0);
    EQ(write(p[1], "w", 1), 1);
    FD_ZERO(&rs);
    FD_SET(ep, &rs);
    tv.tv_sec = 1;
    EQ(select(ep + 1, &rs, NULL, NULL, &tv), 1);
    CHECK(FD_ISSET(ep, &rs), "select: epfd readable");
    /* nested in another instance */
    struct epoll_event nev = {.events = EPOLLIN, .data.u64 = 99};
    OK(epoll_ctl(ep2, EPOLL_CTL_ADD, ep, &nev));
    EQ(epoll_wait(ep2, out, 8, 1000), 1);
    CHECK(out[0].data.u64 == 99 && out[0].events == EPOLLIN, "nested report");
    EQ(read(p[0], buf, sizeof buf), 1);
    EQ(epoll_wait(ep2, out, 8, 0), 0);

    /* ghost events: closing one of two descriptors keeps the item */
    int d = dup(p[0]);
    CHECK(d >= 0, "dup");
    OK(epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL));
    OK(epoll_ctl(ep, EPOLL_CTL_ADD, d, &ev));
    close(d);
    EQ(write(p[1], "g", 1), 1);
    EQ(epoll_wait(ep, out, 8, 0), 1);
    ERR(epoll_ctl(ep, EPOLL_CTL_DEL, d, NULL), EBADF);
    EQ(read(p[0], buf, sizeof buf), 1);
    /* the last descriptor closed: the item goes */
    int e1 = eventfd(1, EFD_NONBLOCK);
    OK(epoll_ctl(ep, EPOLL_CTL_ADD, e1, &ev));
    close(e1);
    EQ(epoll_wait(ep, out, 8, 0), 0); /* and p[0]'s ghost is not ready */

    /* dup of the instance: same instance; close both, then EBADF */
    int epd = dup(ep2);
    CHECK(epd >= 0, "dup(epfd)");
    EQ(write(p[1], "h", 1), 1);
    EQ(epoll_wait(epd, out, 8, 1000), 1);
    close(ep2);
    EQ(epoll_wait(epd, out, 8, 0), 1);
    close(epd);
    ERR(epoll_wait(epd, out, 8, 0), EBADF);
    ERR(epoll_wait(ep2, out, 8, 0), EBADF);

    /* fork: the child has the instance and its items */
    pid_t pid = fork();
    if (pid == 0) {
        struct epoll_event o[4];
        int n = epoll_wait(ep, o, 4, 1000);
        _exit(n == 1 && o[0].data.u64 == 7 ? 0 : 10 + n);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child wait: status %#x", status);

    close(ep);
    ERR(epoll_wait(ep, out, 8, 0), EBADF);

    /* key-less wakeups: a pipe resize wakes the writer's items whatever they watch, and
       shutdown wakes a socket and its peer that way; a queued item keeps its place until
       it is reported (Linux: the item woken first is reported first) */
    int p1[2], p2[2], sp[2];
    OK(pipe2(p1, O_NONBLOCK));
    OK(pipe2(p2, O_NONBLOCK));
    int ep5 = epoll_create1(0);
    CHECK(ep5 >= 0, "epoll_create1");
    struct epoll_event w1 = {.events = EPOLLPRI | EPOLLONESHOT, .data.u64 = 51};
    struct epoll_event r2 = {.events = EPOLLIN | EPOLLET, .data.u64 = 52};
    OK(epoll_ctl(ep5, EPOLL_CTL_ADD, p1[1], &w1));
    OK(epoll_ctl(ep5, EPOLL_CTL_ADD, p2[0], &r2));
    EQ(fcntl(p1[0], F_SETPIPE_SZ, 65536), 65536);
    EQ(write(p2[1], "z", 1), 1);
    OK(close(p1[0])); /* the writer: EPOLLERR */
    EQ(epoll_wait(ep5, out, 8, 0), 2);
    CHECK(out[0].data.u64 == 51 && out[0].events == EPOLLERR && out[1].data.u64 == 52 &&
              out[1].events == EPOLLIN,
          "resize keeps the writer first: got %llu %#x, %llu %#x",
          (unsigned long long)out[0].data.u64, out[0].events,
          (unsigned long long)out[1].data.u64, out[1].events);
    OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sp));
    struct epoll_event s1 = {.events = EPOLLIN, .data.u64 = 53};
    OK(epoll_ctl(ep5, EPOLL_CTL_ADD, sp[1], &s1));
    char sink[8];
    EQ(read(p2[0], sink, sizeof sink), 1);
    OK(epoll_ctl(ep5, EPOLL_CTL_MOD, p2[0], &r2));
    EQ(epoll_wait(ep5, out, 8, 0), 0);
    OK(shutdown(sp[0], SHUT_RD)); /* the peer: no new bits, woken without a key */
    EQ(write(p2[1], "z", 1), 1);
    EQ(write(sp[0], "q", 1), 1);
    EQ(epoll_wait(ep5, out, 8, 0), 2);
    CHECK(out[0].data.u64 == 53 && out[1].data.u64 == 52,
          "shutdown keeps the peer first: got %llu, %llu",
          (unsigned long long)out[0].data.u64, (unsigned long long)out[1].data.u64);
    ERR(shutdown(-1, SHUT_RD), EBADF);
    ERR(shutdown(p2[0], SHUT_RD), ENOTSOCK);
    ERR(shutdown(sp[0], 7), EINVAL);
    ERR(fcntl(reg, F_SETPIPE_SZ, 8192), EBADF);
    close(p1[1]);
    close(p2[0]);
    close(p2[1]);
    close(sp[0]);
    close(sp[1]);
    close(ep5);

    /* close_range: the items of the numbers it closes go with their files (the writer of a
       watched pipe sees its reader gone at once) */
    signal(SIGPIPE, SIG_IGN);
    int c[2];
    OK(pipe2(c, O_NONBLOCK));
    int ep3 = epoll_create1(0);
    CHECK(ep3 >= 0, "epoll_create1");
    struct epoll_event e3 = {.events = EPOLLIN, .data.u64 = 3};
    OK(epoll_ctl(ep3, EPOLL_CTL_ADD, c[0], &e3));
    OK(close_range(c[0], c[0], 0));
    ERR(write(c[1], "x", 1), EPIPE);
    EQ(epoll_wait(ep3, out, 8, 0), 0);
    ERR(epoll_ctl(ep3, EPOLL_CTL_DEL, c[0], NULL), EBADF);
    ERR(close_range(5, 4, 0), EINVAL);
    /* closefrom(3): every program descriptor goes, and epoll keeps working */
    closefrom(3);
    ERR(epoll_wait(ep3, out, 8, 0), EBADF);
    ERR(fcntl(c[1], F_GETFD), EBADF);
    int ep4 = epoll_create1(0);
    CHECK(ep4 >= 0, "epoll_create1 after closefrom");
    OK(pipe2(c, O_NONBLOCK));
    OK(epoll_ctl(ep4, EPOLL_CTL_ADD, c[0], &e3));
    EQ(write(c[1], "y", 1), 1);
    EQ(epoll_wait(ep4, out, 8, 1000), 1);
    CHECK(out[0].data.u64 == 3 && out[0].events == EPOLLIN, "event after closefrom");

    vfork_child_closes();
    success_keeps_errno();
    bad_pointers();
    heap_buffer_bytes_beyond_the_events();
    hidden_fds();
    unseen_close_of_a_directory();
    tcp_shutdown_wakes_peer_first();
    raw_syscalls();
    raw_clone_child();
    uring_epoll_ctl();
    fork_shares();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
