/*
 * Wakeups across threads: every kind of sleeper on an epoll instance is woken when the
 * instance becomes ready, whichever thread caused it and whichever thread pumped the host
 * first (issue 12, findings 1, 4, 7, 10; 5 and 6 in their threaded or C forms).
 *
 * Built and run like errors.c by tests/capi.rs: against glibc alone (the kernel: proof the
 * expectations are Linux's) and under LD_PRELOAD with each driver. Bounded: every wait
 * has a timeout, a lost or late wakeup fails a check instead of hanging. Prints one line
 * per failure, one "rounds" line per measured scenario, and a closing "N passed, M failed".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/eventfd.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "tally.h"

/* Which implementation runs: "kernel" (glibc alone), or the library's driver under
 * LD_PRELOAD ("uring", "epoll", "poll"). Known deviations, documented in
 * crates/eventpoll-capi/README.md, are checked against their documented bound instead. */
static const char *impl = "kernel";

static int deviates(const char *drivers) {
    return strcmp(impl, "kernel") != 0 && strstr(drivers, impl) != NULL;
}

static long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void eventfd_add(int fd, uint64_t v) {
    ssize_t r = write(fd, &v, 8);
    (void)r;
}

static void eventfd_drain(int fd) {
    uint64_t v;
    ssize_t r = read(fd, &v, 8);
    (void)r;
}

/* ---- Finding 1: a cross-thread eventfd write wakes a thread blocked in epoll_wait
 * (mio's Waker, libuv's uv_async_send). The waiting thread is the one that first used
 * epoll in the process (it owns the io_uring driver's ring). */

struct writer {
    int fd;
    int rounds;
    volatile int go;
    volatile int stop;
    volatile long written_at;
};

static void *write_when_told(void *arg) {
    struct writer *w = arg;
    for (int i = 0; i < w->rounds; i++) {
        while (__atomic_load_n(&w->go, __ATOMIC_SEQ_CST) == i && !w->stop)
            usleep(200);
        if (w->stop)
            break;
        usleep(2000); /* the waiter is asleep by now */
        w->written_at = now_ms();
        eventfd_add(w->fd, 1);
    }
    return NULL;
}

static void cross_thread_eventfd(int et) {
    enum { ROUNDS = 15 };
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN | (et ? EPOLLET : 0), .data.u64 = 5};
    CHECK(ep >= 0 && efd >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) == 0, "setup");
    struct writer w = {.fd = efd, .rounds = ROUNDS};
    pthread_t t;
    pthread_create(&t, NULL, write_when_told, &w);
    int late = 0, lost = 0;
    for (int i = 0; i < ROUNDS; i++) {
        __atomic_store_n(&w.go, i + 1, __ATOMIC_SEQ_CST);
        struct epoll_event out[4];
        int n = epoll_wait(ep, out, 4, 1000);
        long lag = now_ms() - w.written_at;
        if (n != 1)
            lost++;
        else if (lag > 8)
            late++;
        if (!et)
            eventfd_drain(efd);
    }
    w.stop = 1;
    pthread_join(t, NULL);
    printf("rounds: cross-thread eventfd write (%s): %d lost, %d late of %d\n",
           et ? "ET" : "LT", lost, late, ROUNDS);
    /* Late: woken more than 8 ms after the write (a deferred signal, one RCU grace
     * period, is 10-25 ms here); a few such rounds are scheduling noise on a busy host. */
    CHECK(lost == 0 && late <= ROUNDS / 3, "cross-thread eventfd (%s): %d lost, %d late of %d",
          et ? "ET" : "LT", lost, late, ROUNDS);
    close(efd);
    close(ep);
}

/* ---- Finding 4: a thread asleep in poll()/select() on an instance is woken, also when
 * another thread's epoll_wait (on another instance watching the same pipe) pumps the
 * host first. */

struct blocker {
    int ep;
    int n;
};

static void *wait_other(void *arg) {
    struct blocker *b = arg;
    struct epoll_event e;
    b->n = epoll_wait(b->ep, &e, 1, 1500);
    return NULL;
}

static void *write_later(void *arg) {
    usleep(30000);
    ssize_t r = write(*(int *)arg, "x", 1);
    (void)r;
    return NULL;
}

static void poll_sleeper_woken(int use_select) {
    enum { ROUNDS = 8 };
    int missed = 0;
    for (int i = 0; i < ROUNDS; i++) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) != 0)
            break;
        int e1 = epoll_create1(EPOLL_CLOEXEC), e2 = epoll_create1(EPOLL_CLOEXEC);
        struct epoll_event ev = {.events = EPOLLIN};
        epoll_ctl(e1, EPOLL_CTL_ADD, p[0], &ev);
        epoll_ctl(e2, EPOLL_CTL_ADD, p[0], &ev);
        struct blocker b = {.ep = e2};
        pthread_t tb, tw;
        pthread_create(&tb, NULL, wait_other, &b);
        pthread_create(&tw, NULL, write_later, &p[1]);
        int r;
        long t0 = now_ms();
        if (use_select) {
            fd_set rs;
            FD_ZERO(&rs);
            FD_SET(e1, &rs);
            struct timeval tv = {.tv_sec = 1};
            r = select(e1 + 1, &rs, NULL, NULL, &tv);
        } else {
            struct pollfd pf = {.fd = e1, .events = POLLIN};
            r = poll(&pf, 1, 1000);
        }
        if (r != 1 || now_ms() - t0 > 500)
            missed++;
        pthread_join(tb, NULL);
        pthread_join(tw, NULL);
        close(e1);
        close(e2);
        close(p[0]);
        close(p[1]);
    }
    printf("rounds: %s sleeper beside an epoll_wait: %d missed of %d\n",
           use_select ? "select" : "poll", missed, ROUNDS);
    CHECK(missed == 0, "%s(e1) missed its wakeup %d times of %d",
          use_select ? "select" : "poll", missed, ROUNDS);
}

/* ---- Finding 7: after the thread that armed the polls exits, an item modified to ET and
 * written once is reported exactly once: waits with timeouts 0, 0, 100 give 1 0 0. */

struct armer {
    int ep, fd;
};

static void *arm_and_exit(void *arg) {
    struct armer *a = arg;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 3}, out[2];
    a->ep = epoll_create1(EPOLL_CLOEXEC);
    epoll_ctl(a->ep, EPOLL_CTL_ADD, a->fd, &ev);
    epoll_wait(a->ep, out, 2, 0);
    return NULL;
}

static void armer_exits(int use_pipe) {
    enum { ROUNDS = 6 };
    int wrong = 0;
    char got[64] = "";
    for (int i = 0; i < ROUNDS; i++) {
        int p[2] = {-1, -1};
        struct armer a;
        if (use_pipe) {
            if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0)
                break;
            a.fd = p[0];
        } else {
            a.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        }
        pthread_t t;
        pthread_create(&t, NULL, arm_and_exit, &a);
        pthread_join(t, NULL);
        usleep(5000);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u64 = 3}, out[2];
        epoll_ctl(a.ep, EPOLL_CTL_MOD, a.fd, &ev);
        if (use_pipe) {
            ssize_t r = write(p[1], "x", 1);
            (void)r;
        } else {
            eventfd_add(a.fd, 1);
        }
        int n0 = epoll_wait(a.ep, out, 2, 0);
        int n1 = epoll_wait(a.ep, out, 2, 0);
        int n2 = epoll_wait(a.ep, out, 2, 100);
        /* README: the poll driver reports an ET item whose input is left unread again at
         * every wait; its first report is never lost. */
        int ok = deviates("poll") ? n0 == 1 : (n0 == 1 && n1 == 0 && n2 == 0);
        if (!ok) {
            wrong++;
            snprintf(got, sizeof got, "%d %d %d", n0, n1, n2);
        }
        close(a.ep);
        close(a.fd);
        if (use_pipe)
            close(p[1]);
    }
    printf("rounds: ET after the arming thread exited (%s): %d wrong of %d\n",
           use_pipe ? "pipe" : "eventfd", wrong, ROUNDS);
    CHECK(wrong == 0, "ET after the arming thread exited (%s): %d wrong of %d (last: %s, want 1 0 0)",
          use_pipe ? "pipe" : "eventfd", wrong, ROUNDS, got);
}

/* ---- Finding 5, threaded form: wakeups that leave nothing ready, made by another thread
 * while the waiter sleeps: an eventfd item in|pri|out|et, two writes of 0: Linux 1 [out]. */

static void *two_zero_writes(void *arg) {
    usleep(20000);
    eventfd_add(*(int *)arg, 0);
    eventfd_add(*(int *)arg, 0);
    return NULL;
}

static void zero_writes_while_asleep(void) {
    enum { ROUNDS = 6 };
    int wrong = 0, other = 0;
    for (int i = 0; i < ROUNDS; i++) {
        int ep = epoll_create1(EPOLL_CLOEXEC);
        int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLPRI | EPOLLOUT | EPOLLET,
                                 .data.u64 = 8},
                           out[2];
        epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev);
        epoll_wait(ep, out, 2, 0); /* the OUT edge of the add */
        pthread_t t;
        pthread_create(&t, NULL, two_zero_writes, &efd);
        int n = epoll_wait(ep, out, 2, 1000);
        pthread_join(t, NULL);
        if (n != 1 || out[0].events != EPOLLOUT)
            wrong++;
        if (n != 0 && !(n == 1 && out[0].events == EPOLLOUT))
            other++;
        close(efd);
        close(ep);
    }
    printf("rounds: two 0-writes while the waiter sleeps: %d wrong of %d\n", wrong, ROUNDS);
    if (deviates("uring epoll poll"))
        /* README deviation 1: wakeups folded before the driver sees them, leaving nothing
         * ready in their direction, are not seen: 1 [out] or 0 [], never anything else. */
        CHECK(other == 0, "two 0-writes while the waiter sleeps: %d outcomes neither 1 [out] nor 0",
              other);
    else
        CHECK(wrong == 0, "two 0-writes while the waiter sleeps: %d wrong of %d (want 1 [out])",
              wrong, ROUNDS);
}

/* Finding 5, single-thread forms. */
static void zero_writes_same_thread(void) {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLPRI | EPOLLOUT | EPOLLET, .data.u64 = 8},
                       out[2];
    epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev);
    int n = epoll_wait(ep, out, 2, 0);
    CHECK(n == 1 && out[0].events == EPOLLOUT, "eventfd add: %d", n);
    eventfd_add(efd, 0);
    eventfd_add(efd, 0);
    n = epoll_wait(ep, out, 2, 0);
    /* README deviation 1 (epoll, poll drivers; uring in owned mode): 0 [] is the bound. */
    CHECK((n == 1 && out[0].events == EPOLLOUT) || (deviates("uring epoll poll") && n == 0),
          "two 0-writes: %d [%#x], want 1 [out]", n, n > 0 ? out[0].events : 0);
    close(efd);
    close(ep);

    /* mio's registration: a socket IN|OUT|ET; the peer writes a byte, read back twice. */
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0,
          "socketpair");
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event sev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.u64 = 9};
    epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], &sev);
    n = epoll_wait(ep, out, 2, 0);
    CHECK(n == 1 && out[0].events == EPOLLOUT, "socket add: %d", n);
    char c;
    ssize_t r = write(sv[1], "y", 1);
    (void)r;
    r = read(sv[0], &c, 1);
    r = read(sv[0], &c, 1);
    n = epoll_wait(ep, out, 2, 0);
    struct epoll_event k[2];
    (void)k;
    CHECK((n == 1 && out[0].events == EPOLLOUT) || (deviates("epoll poll") && n == 0),
          "socket write read twice: %d [%#x], want 1 [out]", n, n > 0 ? out[0].events : 0);
    close(sv[0]);
    close(sv[1]);
    close(ep);
}

/* ---- Finding 10: with an edge-triggered eventfd that is never read, a third thread
 * waiting without a limit always wakes (here: a 1 s limit; a miss counts as a hang). */

struct trio {
    int ep, efd;
    volatile int stop;
    int hung, woken;
};

static void *ticker(void *arg) {
    struct trio *t = arg;
    while (!t->stop) {
        eventfd_add(t->efd, 1);
        usleep(11000);
    }
    return NULL;
}

static void *echoer(void *arg) {
    struct trio *t = arg;
    struct epoll_event out[2];
    while (!t->stop) {
        if (epoll_wait(t->ep, out, 2, 11) > 0)
            eventfd_add(t->efd, 1);
    }
    return NULL;
}

static void poll_three_threads(void) {
    enum { ROUNDS = 20 };
    struct trio t = {.ep = epoll_create1(EPOLL_CLOEXEC),
                     .efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)};
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u64 = 1}, out[2];
    epoll_ctl(t.ep, EPOLL_CTL_ADD, t.efd, &ev);
    pthread_t a, b;
    pthread_create(&a, NULL, ticker, &t);
    pthread_create(&b, NULL, echoer, &t);
    for (int i = 0; i < ROUNDS; i++) {
        if (epoll_wait(t.ep, out, 2, 1000) == 1)
            t.woken++;
        else
            t.hung++;
    }
    t.stop = 1;
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    printf("rounds: ET eventfd, three threads: %d hung of %d\n", t.hung, ROUNDS);
    CHECK(t.hung == 0, "third waiter hung %d times of %d", t.hung, ROUNDS);
    close(t.efd);
    close(t.ep);
}

/* ---- A descriptor closed while another thread owes it a wakeup: tokio's TCP echo under the
 * preload (scripts/capi-tokio.sh). A socket is added by one thread (with the io_uring driver
 * its polls then belong to that thread), which goes on running user code; its peer writes,
 * so that thread owes the poll a wakeup it has not run yet; another thread deletes the item
 * and closes the socket. Linux: the peer sees the hang-up at once. The io_uring driver
 * removed its polls with IORING_OP_POLL_REMOVE, which the kernel refuses (EALREADY) while a
 * wakeup of the poll is pending: the poll stayed armed for good, holding the socket open,
 * and the peer never saw EOF (tokio's echo server closed a connection, its client waited
 * forever). */

struct busy_adder {
    int ep, fd;
    volatile int added, stop;
};

static void *add_then_spin(void *arg) {
    struct busy_adder *b = arg;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.u64 = 9};
    epoll_ctl(b->ep, EPOLL_CTL_ADD, b->fd, &ev);
    __atomic_store_n(&b->added, 1, __ATOMIC_SEQ_CST);
    /* User code only (the clock is read through the vDSO): no system call until told, or 2 s. */
    long until = now_ms() + 2000;
    while (!__atomic_load_n(&b->stop, __ATOMIC_SEQ_CST) && now_ms() < until)
        ;
    return NULL;
}

static void close_while_adder_owes_a_wakeup(void) {
    enum { ROUNDS = 8 };
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int kept_open = 0, rounds = 0;
    CHECK(ep >= 0, "epoll_create1: %s", strerror(errno));
    for (int i = 0; i < ROUNDS && ep >= 0; i++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
            break;
        struct busy_adder b = {.ep = ep, .fd = sv[0]};
        pthread_t t;
        pthread_create(&t, NULL, add_then_spin, &b);
        while (!__atomic_load_n(&b.added, __ATOMIC_SEQ_CST))
            ;
        ssize_t r = write(sv[1], "x", 1);
        (void)r;
        epoll_ctl(ep, EPOLL_CTL_DEL, sv[0], NULL);
        close(sv[0]);
        /* While the adder still runs: its pending work must not keep the socket open. */
        struct pollfd pf = {.fd = sv[1], .events = POLLIN};
        int n = poll(&pf, 1, 500);
        if (n != 1 || !(pf.revents & POLLHUP))
            kept_open++;
        __atomic_store_n(&b.stop, 1, __ATOMIC_SEQ_CST);
        pthread_join(t, NULL);
        close(sv[1]);
        rounds++;
    }
    printf("rounds: closed while the adding thread owes it a wakeup: peer saw no hang-up %d of %d\n",
           kept_open, rounds);
    CHECK(rounds == ROUNDS && kept_open == 0,
          "closed while the adding thread owes it a wakeup: peer saw no hang-up in %d of %d rounds",
          kept_open, rounds);
    if (ep >= 0)
        close(ep);
}

/* ---- A wakeup at a waiter's deadline is not lost (the kernel's selftest
 * epoll_wakeup_test, epoll61). Two threads wait on one instance watching an eventfd
 * edge-triggered: one with a short timeout, one without (bounded here). A third thread
 * writes the eventfd as the short timeout runs out (50 us after it is due: the timed
 * waiter is then often on its way out, which is where the race was). Linux hands the wakeup to one
 * waiter; if that is the one timing out, it still returns the event (ep_poll harvests when
 * it was taken off the queue by a wakeup, even after its timeout), and here it then writes
 * the eventfd again, which must wake the other. So the unbounded waiter always gets an
 * event. The eventfd is never read: it is readable all along and each write changes no
 * bit. Each round's threads exit afterwards: with the io_uring driver the polls of an
 * exiting thread that armed them are moved to a live thread, and a write between the old
 * polls' end and the new poll's arming was lost (the new poll's arming report, the same
 * mask as before, was not counted as a wakeup): 6 to 19 of 100 rounds lost before. */

enum { DEADLINE_MS = 8, DEADLINE_ROUNDS = 100 };

struct deadline_round {
    int ep, efd;
    int timed_n, blocked_n;
};

static void *write_at_deadline(void *arg) {
    struct deadline_round *r = arg;
    usleep(DEADLINE_MS * 1000 + 50);
    eventfd_add(r->efd, 1);
    return NULL;
}

static void *wait_until_deadline(void *arg) {
    struct deadline_round *r = arg;
    struct epoll_event e;
    r->timed_n = epoll_wait(r->ep, &e, 1, DEADLINE_MS);
    if (r->timed_n == 1)
        eventfd_add(r->efd, 1); /* pass the edge on to the other waiter */
    return NULL;
}

static void *wait_without_deadline(void *arg) {
    struct deadline_round *r = arg;
    struct epoll_event e;
    r->blocked_n = epoll_wait(r->ep, &e, 1, 1000);
    return NULL;
}

static void wakeup_at_a_deadline(void) {
    struct deadline_round r = {.ep = epoll_create1(EPOLL_CLOEXEC),
                               .efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)};
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u64 = 3};
    CHECK(r.ep >= 0 && r.efd >= 0 && epoll_ctl(r.ep, EPOLL_CTL_ADD, r.efd, &ev) == 0, "setup");
    int lost = 0, timed_got = 0, rounds = 0;
    /* A lost round costs the bounded wait (1 s): stop after three. */
    for (int i = 0; i < DEADLINE_ROUNDS && lost < 3; i++) {
        pthread_t w, t, b;
        r.timed_n = r.blocked_n = -2;
        pthread_create(&w, NULL, write_at_deadline, &r);
        pthread_create(&t, NULL, wait_until_deadline, &r);
        pthread_create(&b, NULL, wait_without_deadline, &r);
        pthread_join(w, NULL);
        pthread_join(t, NULL);
        pthread_join(b, NULL);
        rounds++;
        if (r.blocked_n != 1)
            lost++;
        if (r.timed_n == 1)
            timed_got++;
    }
    printf("rounds: wakeup at a waiter's deadline: %d lost of %d (the timed waiter took it %d times)\n",
           lost, rounds, timed_got);
    CHECK(lost == 0, "wakeup at a waiter's deadline: the unbounded waiter got nothing in %d of %d rounds",
          lost, rounds);
    close(r.efd);
    close(r.ep);
}

/* ---- One edge, one thread (the kernel's selftest epoll_wakeup_test, epoll60: threads
 * each take one of several edge-triggered eventfds and read it). An edge-triggered item
 * reported to one thread is not reported to a second thread that waits before the first
 * reads the file: Linux takes the edge off at the report; a new write before the second
 * thread waits is a new edge, which it gets. The poll driver sees levels only and reports
 * the unread input again (README, deviation 10): pinned as such. Run alone (tests/capi.rs),
 * the second thread's call is the process's first from another thread: the io_uring
 * driver's switch to shared mode, whose arming reports were taken for wakeups and gave the
 * edge to the second thread too (every run before); they stand for a wakeup now only when
 * the owner's ring owed one (the new write). */

struct second_taker {
    int ep;
    int n;
};

static void *take_edge(void *arg) {
    struct second_taker *s = arg;
    struct epoll_event e;
    s->n = epoll_wait(s->ep, &e, 1, 50);
    return NULL;
}

static void edge_goes_to_one_thread(int write_again) {
    int ep = epoll_create1(EPOLL_CLOEXEC), efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u64 = 8}, out[2];
    CHECK(ep >= 0 && efd >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) == 0, "setup");
    eventfd_add(efd, 1);
    int first = epoll_wait(ep, out, 2, 1000);
    if (write_again)
        eventfd_add(efd, 1);
    struct second_taker s = {.ep = ep, .n = -2};
    pthread_t t;
    pthread_create(&t, NULL, take_edge, &s);
    pthread_join(t, NULL);
    int expected_second = write_again || deviates("poll") ? 1 : 0;
    CHECK(first == 1 && s.n == expected_second,
          "%s, two threads: first wait %d (want 1), second thread's wait %d (want %d)",
          write_again ? "two edges" : "one edge", first, s.n, expected_second);
    close(efd);
    close(ep);
}

/* Issue 16: a thread blocked on an idle instance is not woken by another instance's work.
 * Each thread adds its own descriptor (as memcached's workers and Node's helper thread do),
 * the idle one first, so that it is the first to sleep; then the busy thread is woken ROUNDS
 * times through its own instance, each time once it is asleep again (its system call in /proc:
 * activity that comes while no thread is inside a wait is another matter, see the
 * README's deviation 9). Linux wakes the idle thread once (its own
 * wakeup at the end); before the fix every completion of the process's ring woke it too
 * (~ROUNDS). Counted with getrusage(RUSAGE_THREAD)'s voluntary context switches, bounded
 * well above the kernel's. */

struct idle_pair {
    int ep, fd, ack;
    long nvcsw;
    int got;
    volatile int tid;
};

/* The first line of /proc/self/task/TID/NAME, or "" . */
static void task_file(int tid, const char *name, char *buf, size_t size) {
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/%s", tid, name);
    buf[0] = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    buf[n > 0 ? n : 0] = 0;
}

/* Whether thread `tid` of this process sleeps (state S, not merely preempted) in a system
 * call other than futex: in the busy thread's loop, that is its wait. */
static int asleep(int tid) {
    char buf[512];
    task_file(tid, "stat", buf, sizeof buf);
    char *paren = strrchr(buf, ')');
    if (!paren || paren[1] != ' ' || paren[2] != 'S')
        return 0;
    task_file(tid, "syscall", buf, sizeof buf);
    char *end;
    long nr = strtol(buf, &end, 10);
    return end != buf && nr >= 0 && nr != SYS_futex;
}

static long thread_nvcsw(void) {
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    return ru.ru_nvcsw;
}

static void *idle_waiter(void *arg) {
    struct idle_pair *p = arg;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 2}, out;
    epoll_ctl(p->ep, EPOLL_CTL_ADD, p->fd, &ev);
    eventfd_add(p->ack, 1);
    long before = thread_nvcsw();
    p->got = epoll_wait(p->ep, &out, 1, 20000);
    p->nvcsw = thread_nvcsw() - before;
    return NULL;
}

static void *busy_waiter(void *arg) {
    struct idle_pair *p = arg;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 1}, out;
    epoll_ctl(p->ep, EPOLL_CTL_ADD, p->fd, &ev);
    p->tid = (int)syscall(SYS_gettid);
    eventfd_add(p->ack, 1);
    for (;;) {
        int n = epoll_wait(p->ep, &out, 1, 5000);
        char c;
        if (n != 1 || read(p->fd, &c, 1) != 1 || c == 'q')
            break;
        p->got++;
        eventfd_add(p->ack, 1);
    }
    return NULL;
}

static void idle_thread_not_woken(void) {
    enum { ROUNDS = 200 };
    int pa[2], pb[2];
    CHECK(pipe2(pa, O_CLOEXEC) == 0 && pipe2(pb, O_CLOEXEC) == 0, "pipes");
    struct idle_pair idle = {.ep = epoll_create1(EPOLL_CLOEXEC), .fd = pb[0],
                             .ack = eventfd(0, EFD_CLOEXEC)};
    struct idle_pair busy = {.ep = epoll_create1(EPOLL_CLOEXEC), .fd = pa[0],
                             .ack = eventfd(0, EFD_CLOEXEC)};
    uint64_t v;
    pthread_t ti, tb;
    pthread_create(&ti, NULL, idle_waiter, &idle);
    CHECK(read(idle.ack, &v, 8) == 8, "idle thread ready");
    usleep(20000); /* asleep in its wait */
    pthread_create(&tb, NULL, busy_waiter, &busy);
    CHECK(read(busy.ack, &v, 8) == 8, "busy thread ready");
    int acked = 0;
    for (int i = 0; i < ROUNDS; i++) {
        /* Once the busy thread is asleep again (at most 1 s). */
        for (int w = 0; w < 5000 && !asleep(busy.tid); w++)
            usleep(200);
        if (write(pa[1], "x", 1) != 1)
            break;
        struct pollfd pf = {.fd = busy.ack, .events = POLLIN};
        if (poll(&pf, 1, 5000) != 1 || read(busy.ack, &v, 8) != 8)
            break;
        acked++;
    }
    ssize_t r = write(pa[1], "q", 1);
    r = write(pb[1], "y", 1);
    (void)r;
    pthread_join(tb, NULL);
    pthread_join(ti, NULL);
    printf("rounds: idle thread's voluntary context switches while another thread was woken "
           "%d times: %ld\n", acked, idle.nvcsw);
    CHECK(acked == ROUNDS && busy.got == ROUNDS && idle.got == 1,
          "busy rounds %d (woken %d), idle thread's wait gave %d", acked, busy.got, idle.got);
    /* The poll driver has no relay: every blocked thread watches the host (README). */
    /* Typically 4-7 here now (150-200 before); a loaded machine adds some: the busy thread
     * descheduled between two waits leaves the lead free, and a completion then wakes the
     * idle thread through its relay (20-50 at load average 12-15 on 2 cores, 117 once). */
    CHECK(idle.nvcsw <= ROUNDS / 2 || deviates("poll"),
          "idle thread woken %ld times while another instance had %d wakeups", idle.nvcsw,
          ROUNDS);
    close(pa[0]), close(pa[1]), close(pb[0]), close(pb[1]);
    close(idle.ep), close(busy.ep), close(idle.ack), close(busy.ack);
}

/* ---- A poll() asleep on an instance whose number another thread closed: Linux's poll
 * holds the file it sleeps on and looks its numbers up again only when one of its own
 * queues wakes it, a signal comes or its time-out ends. Activity of a file the instance
 * does not watch (another instance does: the library's host sees it) leaves it asleep; at
 * its time-out it looks again and finds the number closed: 1, POLLNVAL. */

struct closed_poller {
    int ep;
    int n;
    short revents;
    volatile int done;
};

static void *poll_until_timeout(void *arg) {
    struct closed_poller *c = arg;
    struct pollfd pf = {.fd = c->ep, .events = POLLIN};
    c->n = poll(&pf, 1, 400);
    c->revents = pf.revents;
    __atomic_store_n(&c->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void poll_on_closed_instance(void) {
    enum { ROUNDS = 4 };
    int early = 0, wrong = 0;
    for (int i = 0; i < ROUNDS; i++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) != 0)
            break;
        int other = epoll_create1(EPOLL_CLOEXEC);
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 1};
        epoll_ctl(other, EPOLL_CTL_ADD, sv[0], &ev);
        struct closed_poller c = {.ep = epoll_create1(EPOLL_CLOEXEC)};
        pthread_t t;
        long t0 = now_ms();
        pthread_create(&t, NULL, poll_until_timeout, &c);
        usleep(50000); /* asleep in poll */
        close(c.ep);
        usleep(20000);
        ssize_t r = write(sv[1], "x", 1);
        (void)r;
        usleep(80000);
        if (__atomic_load_n(&c.done, __ATOMIC_SEQ_CST))
            early++;
        pthread_join(t, NULL);
        long took = now_ms() - t0;
        if (c.n != 1 || c.revents != POLLNVAL || took < 380)
            wrong++;
        close(other);
        close(sv[0]);
        close(sv[1]);
    }
    printf("rounds: poll on an instance closed by another thread, unrelated wakeup: %d returned "
           "early, %d not (1, POLLNVAL) at the time-out, of %d\n",
           early, wrong, ROUNDS);
    CHECK(early == 0 && wrong == 0,
          "poll on a closed instance: %d returned early, %d wrong at the time-out, of %d", early,
          wrong, ROUNDS);
}

/* ---- A poll() and a select() of an instance never report it readable for wakeups that
 * leave its item not ready (eventfd writes of 0 on a zero counter) while a third thread,
 * blocked in epoll_wait on the same instance, pumps them: Linux's poll of an epoll file
 * asks the queued items and sleeps on. The shape of scenarios/threads/timeout/
 * wakeup-without-event-keeps-waiting.ep, repeated with every thread asleep at each write.
 * That scenario failed 1 in 300 runs before observe.rs confirmed an instance found readable
 * with the engine's own poll (its bell rung by a wakeup another thread's pump delivered
 * after this call's settle); this loop did not catch that window in 540 writes per driver,
 * so it guards the property, not that window. */

struct zero_poll {
    int ep;
    volatile int stop;
    int polls[2], readable[2], waits, events;
};

static void *zero_poll_waiter(void *arg) {
    struct zero_poll *z = arg;
    struct epoll_event out[4];
    while (!__atomic_load_n(&z->stop, __ATOMIC_SEQ_CST)) {
        int n = epoll_wait(z->ep, out, 4, 50);
        z->waits++;
        if (n != 0)
            z->events++;
    }
    return NULL;
}

static void zero_poll_loop(struct zero_poll *z, int use_select) {
    while (!__atomic_load_n(&z->stop, __ATOMIC_SEQ_CST)) {
        int n;
        if (use_select) {
            fd_set r;
            FD_ZERO(&r);
            FD_SET(z->ep, &r);
            struct timeval tv = {.tv_sec = 0, .tv_usec = 50000};
            n = select(z->ep + 1, &r, NULL, NULL, &tv);
        } else {
            struct pollfd p = {.fd = z->ep, .events = POLLIN};
            n = poll(&p, 1, 50);
        }
        z->polls[use_select]++;
        if (n != 0)
            z->readable[use_select]++;
    }
}

static void *zero_poll_poller(void *arg) {
    zero_poll_loop(arg, 0);
    return NULL;
}

static void *zero_poll_selector(void *arg) {
    zero_poll_loop(arg, 1);
    return NULL;
}

static void zero_writes_under_poll(void) {
    struct zero_poll z = {.ep = epoll_create1(EPOLL_CLOEXEC)};
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 1};
    epoll_ctl(z.ep, EPOLL_CTL_ADD, efd, &ev);
    pthread_t w, p, s;
    pthread_create(&w, NULL, zero_poll_waiter, &z);
    pthread_create(&p, NULL, zero_poll_poller, &z);
    pthread_create(&s, NULL, zero_poll_selector, &z);
    long t0 = now_ms();
    int writes = 0;
    while (now_ms() - t0 < 600) {
        usleep(1500 + (writes % 5) * 100); /* every thread asleep again */
        eventfd_add(efd, 0);
        writes++;
    }
    __atomic_store_n(&z.stop, 1, __ATOMIC_SEQ_CST);
    pthread_join(w, NULL);
    pthread_join(p, NULL);
    pthread_join(s, NULL);
    printf("rounds: %d zero writes: poll reported the instance readable %d of %d times, select "
           "%d of %d, epoll_wait returned events %d of %d times\n",
           writes, z.readable[0], z.polls[0], z.readable[1], z.polls[1], z.events, z.waits);
    CHECK(z.readable[0] + z.readable[1] == 0 && z.events == 0 && writes >= 20,
          "zero writes: poll readable %d of %d, select %d of %d, waits with events %d of %d",
          z.readable[0], z.polls[0], z.readable[1], z.polls[1], z.events, z.waits);
    close(efd);
    close(z.ep);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *preload = getenv("LD_PRELOAD");
    if (preload && strstr(preload, "eventpoll")) {
        const char *d = getenv("EVENTPOLL_DRIVER");
        impl = d && *d ? d : "uring";
    }
    const char *only = argc > 1 ? argv[1] : NULL;
#define RUN(name, call)                                                                    \
    if (!only || strcmp(only, name) == 0)                                                  \
        call;
    /* First: this thread creates the process's first instance and so owns the driver. */
    RUN("f1", (cross_thread_eventfd(0), cross_thread_eventfd(1)));
    RUN("f4", (poll_sleeper_woken(0), poll_sleeper_woken(1)));
    RUN("f5", (zero_writes_same_thread(), zero_writes_while_asleep()));
    RUN("f10", poll_three_threads());
    RUN("close-owed", close_while_adder_owes_a_wakeup());
    RUN("deadline", wakeup_at_a_deadline());
    RUN("one-edge", edge_goes_to_one_thread(0));
    RUN("two-edges", edge_goes_to_one_thread(1));
    RUN("idle", idle_thread_not_woken());
    RUN("poll-closed", poll_on_closed_instance());
    RUN("zero-poll", zero_writes_under_poll());
    /* Last: the helper threads that armed polls exit. */
    RUN("f7", (armer_exits(0), armer_exits(1)));
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
