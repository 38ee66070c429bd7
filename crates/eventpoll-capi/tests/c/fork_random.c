/*
 * Randomized differential test of epoll across fork(2): `./fork_random SEED COUNT`.
 *
 * For each of COUNT rounds (the round's seed derives from SEED and the round number) it
 * builds 1 or 2 epoll instances (the second sometimes nested in the first), 4-6
 * non-blocking pipes and 1-2 non-blocking eventfds, runs 10-40 random operations in the
 * parent, forks, runs 5-20 in the child (which then exits) and, after waiting for the
 * child, 5-20 more in the parent. Operations: epoll_ctl ADD/MOD/DEL (interest IN, OUT, IN|OUT
 * or IN|RDHUP, with ET and/or ONESHOT at random) on pipe ends, eventfds, dups and the other
 * instance; a 1-byte pipe write, a read of up to 4 bytes, filling or draining a pipe; an
 * eventfd write of 1 or read; a dup of a read end added to an instance (a ghost item once
 * the dup is closed) and its close; the close of a pipe's write end (hang-up); and
 * epoll_wait with a zero timeout (maxevents 8, now and then 1-3, to see the ready list's
 * order behind the first events). Every operation's result (return value, errno, and for a
 * wait every (data, events) pair in order) goes to stdout, so the transcript of a native
 * run (the kernel's epoll) can be compared with one under LD_PRELOAD=libeventpoll.so,
 * which hands its instances over to the kernel at the fork (src/handover.rs).
 * scripts/capi-fork-random.sh does the comparing.
 *
 * Everything is deterministic: one PRNG stream (splitmix64) for the setup and the phase
 * before the fork, one for the child and one for the parent after it, so both runs draw
 * the same operations; waits have a zero timeout; stdout is flushed before the fork and
 * the parent waits for the child before going on.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- PRNG ---------------------------------------------------------------------------- */

typedef struct {
    uint64_t s;
} rng_t;

static uint64_t next64(rng_t *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform-enough in [0, n). */
static int rnd(rng_t *r, int n) { return (int)(next64(r) % (uint64_t)n); }

static uint64_t mix(uint64_t a, uint64_t b) {
    rng_t r = {a * 0x2545f4914f6cdd1dULL + b};
    next64(&r);
    return next64(&r);
}

/* ---- output -------------------------------------------------------------------------- */

static const char *prefix = "";

static void out(const char *fmt, ...) {
    va_list ap;
    fputs(prefix, stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

static const char *errname(int e) {
    switch (e) {
    case 0: return "0";
    case EBADF: return "EBADF";
    case EEXIST: return "EEXIST";
    case ENOENT: return "ENOENT";
    case EINVAL: return "EINVAL";
    case ELOOP: return "ELOOP";
    case EPERM: return "EPERM";
    case EAGAIN: return "EAGAIN";
    case EPIPE: return "EPIPE";
    case EINTR: return "EINTR";
    case EFAULT: return "EFAULT";
    case ENOMEM: return "ENOMEM";
    case ENOSPC: return "ENOSPC";
    case EMFILE: return "EMFILE";
    case EIO: return "EIO";
    default: {
        static char buf[32];
        snprintf(buf, sizeof buf, "errno%d", e);
        return buf;
    }
    }
}

/* "-> R" or "-> -1 ENAME" for a call's result (errno is read at once). */
static const char *res(long r, int e) {
    static char buf[64];
    if (r == -1)
        snprintf(buf, sizeof buf, "-> -1 %s", errname(e));
    else
        snprintf(buf, sizeof buf, "-> %ld", r);
    return buf;
}

static const char *evname(uint32_t ev) {
    static char buf[96];
    static const struct {
        uint32_t bit;
        const char *name;
    } names[] = {
        {EPOLLIN, "IN"},         {EPOLLOUT, "OUT"},         {EPOLLRDHUP, "RDHUP"},
        {EPOLLPRI, "PRI"},       {EPOLLERR, "ERR"},         {EPOLLHUP, "HUP"},
        {EPOLLRDNORM, "RDNORM"}, {EPOLLWRNORM, "WRNORM"},   {EPOLLET, "ET"},
        {EPOLLONESHOT, "ONESHOT"},
    };
    buf[0] = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (ev & names[i].bit) {
            if (buf[0])
                strcat(buf, "|");
            strcat(buf, names[i].name);
            ev &= ~names[i].bit;
        }
    }
    if (ev) {
        char x[16];
        snprintf(x, sizeof x, "%s0x%x", buf[0] ? "|" : "", ev);
        strcat(buf, x);
    }
    if (!buf[0])
        strcpy(buf, "0");
    return buf;
}

/* ---- one round's world --------------------------------------------------------------- */

#define MAXPIPE 6
#define MAXEFD 2
#define MAXDUP 4

typedef struct {
    int nep, nested;
    int ep[2];
    int npipe;
    int pr[MAXPIPE], pw[MAXPIPE];
    int nefd;
    int efd[MAXEFD];
    int dup[MAXDUP];    /* -1: free slot */
    int dup_of[MAXDUP]; /* the pipe the dup is of */
    int seq;            /* data numbers: unique per ctl */
    int nadded;         /* successful ADDs: (instance, target name), for MOD and DEL */
    int added_ep[128];
    char added_name[128][8];
} world_t;

/* A ctl target: a name for the transcript and the descriptor (-1 once closed). */
typedef struct {
    char name[8];
    int fd;
} target_t;

static int targets(world_t *w, target_t *t, int open_only) {
    int n = 0;
#define ADD_T(fmt, i, f)                                                                    \
    do {                                                                                    \
        if (!open_only || (f) >= 0) {                                                       \
            snprintf(t[n].name, sizeof t[n].name, fmt, i);                                  \
            t[n].fd = (f);                                                                  \
            n++;                                                                            \
        }                                                                                   \
    } while (0)
    for (int i = 0; i < w->npipe; i++)
        ADD_T("r%d", i, w->pr[i]);
    for (int i = 0; i < w->npipe; i++)
        ADD_T("w%d", i, w->pw[i]);
    for (int i = 0; i < w->nefd; i++)
        ADD_T("e%d", i, w->efd[i]);
    for (int i = 0; i < MAXDUP; i++)
        if (w->dup[i] >= 0)
            ADD_T("d%d", i, w->dup[i]);
    for (int i = 0; i < w->nep; i++)
        ADD_T("ep%d", i, w->ep[i]);
#undef ADD_T
    return n;
}

static uint32_t interest(rng_t *r) {
    static const uint32_t base[] = {EPOLLIN, EPOLLOUT, EPOLLIN | EPOLLOUT,
                                    EPOLLRDHUP | EPOLLIN};
    uint32_t ev = base[rnd(r, 4)];
    if (rnd(r, 2))
        ev |= EPOLLET;
    if (rnd(r, 3) == 0)
        ev |= EPOLLONESHOT;
    return ev;
}

static void do_wait(world_t *w, rng_t *r) {
    int i = rnd(r, w->nep);
    static const int maxes[] = {8, 8, 8, 8, 8, 8, 8, 1, 2, 3};
    int max = maxes[rnd(r, 10)];
    struct epoll_event evs[8];
    memset(evs, 0, sizeof evs);
    errno = 0;
    int n = epoll_wait(w->ep[i], evs, max, 0);
    int e = errno;
    char line[1024];
    int len = snprintf(line, sizeof line, "wait ep%d max=%d %s", i, max, res(n, e));
    for (int k = 0; k < n && k < 8; k++)
        len += snprintf(line + len, sizeof line - len, " %llu:%s",
                        (unsigned long long)evs[k].data.u64, evname(evs[k].events));
    out("%s", line);
}

static void do_ctl(world_t *w, rng_t *r, int op) {
    target_t t[MAXPIPE * 2 + MAXEFD + MAXDUP + 2];
    /* Mostly open targets; now and then any (a closed one: EBADF). */
    int n = targets(w, t, rnd(r, 10) != 0);
    if (n == 0)
        return;
    int k = rnd(r, n);
    int i = rnd(r, w->nep);
    /* MOD and DEL: mostly an item that was added (it may be gone since). */
    if (op != EPOLL_CTL_ADD && w->nadded > 0 && rnd(r, 4) != 0) {
        int a = rnd(r, w->nadded);
        n = targets(w, t, 0);
        for (k = 0; k < n && strcmp(t[k].name, w->added_name[a]) != 0; k++)
            ;
        if (k == n) /* a dup slot freed since */
            k = rnd(r, n);
        i = w->added_ep[a];
    }
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = interest(r);
    ev.data.u64 = (uint64_t)++w->seq;
    const char *name = op == EPOLL_CTL_ADD ? "ADD" : op == EPOLL_CTL_MOD ? "MOD" : "DEL";
    errno = 0;
    int rc = epoll_ctl(w->ep[i], op, t[k].fd, &ev);
    int e = errno;
    if (op == EPOLL_CTL_ADD && rc == 0 && w->nadded < 128) {
        w->added_ep[w->nadded] = i;
        strcpy(w->added_name[w->nadded++], t[k].name);
    }
    if (op == EPOLL_CTL_DEL)
        out("ctl ep%d DEL %s %s", i, t[k].name, res(rc, e));
    else
        out("ctl ep%d %s %s %s data=%llu %s", i, name, t[k].name, evname(ev.events),
            (unsigned long long)ev.data.u64, res(rc, e));
}

static void do_op(world_t *w, rng_t *r) {
    int p = rnd(r, w->npipe);
    int c = rnd(r, 100);
    char buf[65536];
    long rc;
    int e;
    if (c < 18) {
        do_ctl(w, r, EPOLL_CTL_ADD);
    } else if (c < 28) {
        do_ctl(w, r, EPOLL_CTL_MOD);
    } else if (c < 33) {
        do_ctl(w, r, EPOLL_CTL_DEL);
    } else if (c < 44) {
        errno = 0;
        rc = write(w->pw[p], "x", 1);
        e = errno;
        out("write w%d 1 %s", p, res(rc, e));
    } else if (c < 53) {
        errno = 0;
        rc = read(w->pr[p], buf, 4);
        e = errno;
        out("read r%d 4 %s", p, res(rc, e));
    } else if (c < 55) {
        /* Fill the pipe: its write end stops being ready for EPOLLOUT. */
        long total = 0;
        errno = 0;
        do {
            memset(buf, 'f', sizeof buf);
            rc = write(w->pw[p], buf, sizeof buf);
            if (rc > 0)
                total += rc;
        } while (rc > 0);
        e = errno;
        out("fill w%d wrote %ld, last %s", p, total, res(rc, e));
    } else if (c < 57) {
        long total = 0;
        errno = 0;
        do {
            rc = read(w->pr[p], buf, sizeof buf);
            if (rc > 0)
                total += rc;
        } while (rc > 0);
        e = errno;
        out("drain r%d read %ld, last %s", p, total, res(rc, e));
    } else if (c < 63) {
        int i = rnd(r, w->nefd);
        uint64_t one = 1;
        errno = 0;
        rc = write(w->efd[i], &one, 8);
        e = errno;
        out("efd write e%d 1 %s", i, res(rc, e));
    } else if (c < 68) {
        int i = rnd(r, w->nefd);
        uint64_t v = 0;
        errno = 0;
        rc = read(w->efd[i], &v, 8);
        e = errno;
        out("efd read e%d %s value %llu", i, res(rc, e), (unsigned long long)v);
    } else if (c < 73) {
        /* A dup of a read end, added to an instance: a ghost once the dup is closed. */
        int s = -1;
        for (int i = 0; i < MAXDUP; i++)
            if (w->dup[i] < 0) {
                s = i;
                break;
            }
        if (s < 0) {
            out("dup: no free slot");
            return;
        }
        errno = 0;
        int d = dup(w->pr[p]);
        e = errno;
        out("dup r%d as d%d %s", p, s, res(d >= 0 ? 0 : -1, e));
        if (d < 0)
            return;
        w->dup[s] = d;
        w->dup_of[s] = p;
        int i = rnd(r, w->nep);
        struct epoll_event ev;
        memset(&ev, 0, sizeof ev);
        ev.events = interest(r);
        ev.data.u64 = (uint64_t)++w->seq;
        errno = 0;
        rc = epoll_ctl(w->ep[i], EPOLL_CTL_ADD, d, &ev);
        e = errno;
        if (rc == 0 && w->nadded < 128) {
            w->added_ep[w->nadded] = i;
            snprintf(w->added_name[w->nadded++], 8, "d%d", s);
        }
        out("ctl ep%d ADD d%d %s data=%llu %s", i, s, evname(ev.events),
            (unsigned long long)ev.data.u64, res(rc, e));
    } else if (c < 78) {
        int open[MAXDUP], n = 0;
        for (int i = 0; i < MAXDUP; i++)
            if (w->dup[i] >= 0)
                open[n++] = i;
        if (n == 0) {
            out("close dup: none");
            return;
        }
        int s = open[rnd(r, n)];
        errno = 0;
        rc = close(w->dup[s]);
        e = errno;
        out("close d%d (of r%d) %s", s, w->dup_of[s], res(rc, e));
        w->dup[s] = -1;
    } else if (c < 81) {
        /* Hang-up: close a pipe's write end (in the child, the parent's copy stays). */
        if (w->pw[p] < 0) {
            out("close w%d: closed already", p);
            return;
        }
        errno = 0;
        rc = close(w->pw[p]);
        e = errno;
        out("close w%d %s", p, res(rc, e));
        w->pw[p] = -1;
    } else {
        do_wait(w, r);
    }
}

static void run_ops(world_t *w, rng_t *r, int n) {
    for (int i = 0; i < n; i++)
        do_op(w, r);
}

static void close_all(world_t *w) {
    for (int i = 0; i < MAXDUP; i++)
        if (w->dup[i] >= 0)
            close(w->dup[i]);
    for (int i = 0; i < w->npipe; i++) {
        if (w->pw[i] >= 0)
            close(w->pw[i]);
        close(w->pr[i]);
    }
    for (int i = 0; i < w->nefd; i++)
        close(w->efd[i]);
    for (int i = w->nep - 1; i >= 0; i--)
        close(w->ep[i]);
}

static void round_run(uint64_t seed, int round) {
    uint64_t rs = mix(seed, (uint64_t)round);
    rng_t r = {rs};
    rng_t rc = {mix(rs, 0xc41d)};
    rng_t rp = {mix(rs, 0x9a7e)};
    world_t w;
    memset(&w, 0, sizeof w);
    prefix = "";
    out("round %d", round);

    w.nep = 1 + rnd(&r, 2);
    for (int i = 0; i < w.nep; i++) {
        w.ep[i] = epoll_create1(0);
        if (w.ep[i] < 0) {
            out("epoll_create1: %s", errname(errno));
            exit(2);
        }
    }
    w.nested = w.nep == 2 && rnd(&r, 2);
    w.npipe = 4 + rnd(&r, 3);
    for (int i = 0; i < w.npipe; i++) {
        int fds[2];
        if (pipe2(fds, O_NONBLOCK) < 0) {
            out("pipe2: %s", errname(errno));
            exit(2);
        }
        w.pr[i] = fds[0];
        w.pw[i] = fds[1];
    }
    w.nefd = 1 + rnd(&r, 2);
    for (int i = 0; i < w.nefd; i++) {
        w.efd[i] = eventfd(0, EFD_NONBLOCK);
        if (w.efd[i] < 0) {
            out("eventfd: %s", errname(errno));
            exit(2);
        }
    }
    for (int i = 0; i < MAXDUP; i++)
        w.dup[i] = -1;
    out("setup ep=%d nested=%d pipes=%d eventfds=%d", w.nep, w.nested, w.npipe, w.nefd);
    if (w.nested) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 1000};
        errno = 0;
        int rc0 = epoll_ctl(w.ep[0], EPOLL_CTL_ADD, w.ep[1], &ev);
        out("ctl ep0 ADD ep1 IN data=1000 %s", res(rc0, errno));
        if (rc0 == 0) {
            w.added_ep[w.nadded] = 0;
            strcpy(w.added_name[w.nadded++], "ep1");
        }
    }

    run_ops(&w, &r, 10 + rnd(&r, 31));

    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        out("fork: %s", errname(errno));
        exit(2);
    }
    if (pid == 0) {
        prefix = "child: ";
        w.seq = 100;
        run_ops(&w, &rc, 5 + rnd(&rc, 16));
        fflush(stdout);
        _exit(0);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    prefix = "parent: ";
    w.seq = 200;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        out("child status 0x%x", status);
    run_ops(&w, &rp, 5 + rnd(&rp, 16));
    close_all(&w);
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s SEED COUNT\n", argv[0]);
        return 2;
    }
    uint64_t seed = strtoull(argv[1], NULL, 0);
    int count = atoi(argv[2]);
    for (int i = 0; i < count; i++)
        round_run(seed, i);
    return 0;
}
