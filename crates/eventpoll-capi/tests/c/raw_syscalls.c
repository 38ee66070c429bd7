/*
 * System calls made through glibc's syscall() (libuv closes with syscall(SYS_close), test
 * suites wait with syscall(SYS_epoll_pwait2)), and epoll_ctl submitted through io_uring
 * (IORING_OP_EPOLL_CTL, as libuv >= 1.45 adds and modifies its items), with Linux's results.
 * Included by errors.c (same CHECK/ERR/OK/EQ macros); every build must pass every check.
 */
#include <linux/io_uring.h>
#ifndef IORING_SETUP_NO_SQARRAY
#define IORING_SETUP_NO_SQARRAY (1U << 16) /* Linux 6.6; older kernels refuse it: skipped */
#endif

/* A descriptor's peer or writer sees the file gone within a second. */
static int hup_within_1s(int fd) {
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    return poll(&pf, 1, 1000) == 1 && (pf.revents & POLLHUP);
}

/* close(2) by the instruction itself, as Go's runtime or a static binary makes it: no
   libc, nothing an interposer can see. */
static long insn_close(int fd) {
#if defined(__x86_64__)
    long r;
    __asm__ volatile("syscall"
                     : "=a"(r)
                     : "0"((long)SYS_close), "D"((long)fd)
                     : "rcx", "r11", "memory");
    return r;
#elif defined(__aarch64__)
    register long x8 __asm__("x8") = SYS_close;
    register long x0 __asm__("x0") = fd;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8) : "memory");
    return x0;
#else
    return syscall(SYS_close, fd);
#endif
}

/* epoll_pwait(2) with a zero timeout and no signal set, by the instruction itself: what
   the kernel's instance behind `ep` reports, whatever an interposer would answer. */
static long insn_epoll_pwait0(int ep, struct epoll_event *out, int max) {
#if defined(__x86_64__)
    long r;
    register long r10 __asm__("r10") = 0; /* timeout */
    register long r8 __asm__("r8") = 0;   /* sigmask: none */
    register long r9 __asm__("r9") = 8;   /* sigsetsize */
    __asm__ volatile("syscall"
                     : "=a"(r)
                     : "0"((long)SYS_epoll_pwait), "D"((long)ep), "S"((long)out),
                       "d"((long)max), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return r;
#elif defined(__aarch64__)
    register long x8 __asm__("x8") = SYS_epoll_pwait;
    register long x0 __asm__("x0") = ep;
    register long x1 __asm__("x1") = (long)out;
    register long x2 __asm__("x2") = max;
    register long x3 __asm__("x3") = 0;
    register long x4 __asm__("x4") = 0;
    register long x5 __asm__("x5") = 8;
    __asm__ volatile("svc 0"
                     : "+r"(x0)
                     : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                     : "memory");
    return x0;
#else
    return syscall(SYS_epoll_pwait, ep, out, max, 0, NULL, 8);
#endif
}

static void raw_syscalls(void) {
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 21};
    struct epoll_event out[8];
    struct timespec zero = {0, 0};
    int ep = epoll_create1(0), p[2], s[2];
    CHECK(ep >= 0, "epoll_create1");

    /* (a) after EPOLL_CTL_DEL and a raw close, nothing keeps the file open: the peer sees
       the hang-up at once, a writer gets EPIPE, a blocking read does not hang */
    OK(socketpair(AF_UNIX, SOCK_STREAM, 0, s));
    OK(epoll_ctl(ep, EPOLL_CTL_ADD, s[0], &ev));
    EQ(epoll_wait(ep, out, 8, 0), 0); /* the host watches it now */
    OK(epoll_ctl(ep, EPOLL_CTL_DEL, s[0], NULL));
    EQ(syscall(SYS_close, s[0]), 0);
    char c;
    if (hup_within_1s(s[1]))
        EQ(read(s[1], &c, 1), 0); /* would block for good if the file were still open */
    else
        CHECK(0, "peer of a raw-closed socket sees no hang-up");
    close(s[1]);
    OK(pipe(p));
    OK(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
    EQ(epoll_wait(ep, out, 8, 0), 0);
    OK(epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL));
    EQ(syscall(SYS_close, p[0]), 0);
    ERR(write(p[1], "x", 1), EPIPE);
    close(p[1]);
    /* without DEL: the raw close of the last number removes the item, as close does */
    OK(socketpair(AF_UNIX, SOCK_STREAM, 0, s));
    OK(epoll_ctl(ep, EPOLL_CTL_ADD, s[0], &ev));
    EQ(syscall(SYS_close, s[0]), 0);
    CHECK(hup_within_1s(s[1]), "peer of a raw-closed watched socket sees no hang-up");
    ERR(epoll_ctl(ep, EPOLL_CTL_DEL, s[0], NULL), EBADF);
    close(s[1]);

    /* (b) an instance closed raw leaves no stale number: a pipe reusing it is a pipe */
    int dead = epoll_create1(0);
    CHECK(dead >= 0, "epoll_create1");
    EQ(syscall(SYS_close, dead), 0);
    OK(pipe(p));
    CHECK(p[0] == dead, "pipe reuses the closed instance's number (%d, %d)", p[0], dead);
    OK(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
    EQ(write(p[1], "x", 1), 1);
    EQ(epoll_wait(ep, out, 8, 1000), 1);
    CHECK(out[0].data.u64 == 21 && out[0].events == EPOLLIN, "pipe on a reused number");
    ERR(epoll_ctl(p[0], EPOLL_CTL_ADD, p[1], &ev), EINVAL); /* not an instance */
    OK(epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL));
    /* and when the close was the instruction itself, the reuse is noticed at the ADD */
    int unseen = epoll_create1(0), q[2];
    CHECK(unseen >= 0, "epoll_create1");
    EQ(insn_close(unseen), 0);
    OK(pipe(q));
    CHECK(q[0] == unseen, "pipe reuses the unseen-closed instance's number");
    struct epoll_event eq = {.events = EPOLLIN, .data.u64 = 22};
    OK(epoll_ctl(ep, EPOLL_CTL_ADD, q[0], &eq));
    EQ(write(q[1], "x", 1), 1);
    EQ(epoll_wait(ep, out, 8, 1000), 1);
    CHECK(out[0].data.u64 == 22 && out[0].events == EPOLLIN, "pipe on an unseen-closed number");
    ERR(epoll_ctl(q[0], EPOLL_CTL_ADD, q[1], &ev), EINVAL);
    OK(epoll_ctl(ep, EPOLL_CTL_DEL, q[0], NULL));
    close(q[0]);
    close(q[1]);
    /* the same through close_range, dup2 and dup3 over an instance */
    int ids[3];
    for (int k = 0; k < 3; k++) {
        int inst = epoll_create1(0);
        CHECK(inst >= 0, "epoll_create1");
        if (k == 0)
            EQ(syscall(SYS_close_range, inst, inst, 0), 0);
        else if (k == 1)
            EQ(syscall(SYS_dup3, p[0], inst, 0), inst);
        else
            EQ(syscall(SYS_dup2, p[0], inst), inst);
        if (k == 0)
            EQ(dup(p[0]), inst);
        ids[k] = inst;
        struct epoll_event e = {.events = EPOLLIN, .data.u64 = 30 + k};
        OK(epoll_ctl(ep, EPOLL_CTL_ADD, inst, &e));
    }
    EQ(epoll_wait(ep, out, 8, 1000), 3);
    CHECK(out[0].data.u64 == 30 && out[1].data.u64 == 31 && out[2].data.u64 == 32,
          "pipes on reused instance numbers: %llu %llu %llu",
          (unsigned long long)out[0].data.u64, (unsigned long long)out[1].data.u64,
          (unsigned long long)out[2].data.u64);
    for (int k = 0; k < 3; k++) {
        OK(epoll_ctl(ep, EPOLL_CTL_DEL, ids[k], NULL));
        close(ids[k]);
    }
    EQ(read(p[0], &c, 1), 1);

    /* a raw dup keeps the item as dup does (a ghost after the first number's close) */
    int d = syscall(SYS_dup, p[0]);
    CHECK(d >= 0, "syscall(SYS_dup)");
    int f = syscall(SYS_fcntl, p[0], F_DUPFD_CLOEXEC, 100);
    CHECK(f >= 100, "syscall(SYS_fcntl, F_DUPFD_CLOEXEC)");
    EQ(syscall(SYS_fcntl, f, F_GETFD), FD_CLOEXEC);
    OK(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
    EQ(syscall(SYS_close, p[0]), 0);
    EQ(syscall(SYS_close, f), 0);
    EQ(write(p[1], "y", 1), 1);
    EQ(epoll_wait(ep, out, 8, 1000), 1);
    CHECK(out[0].data.u64 == 21, "ghost after raw dup and raw close");
    EQ(syscall(SYS_close, d), 0);
    EQ(epoll_wait(ep, out, 8, 0), 0);
    ERR(write(p[1], "z", 1), EPIPE);
    close(p[1]);

    /* (c) raw waits on a ready instance report its item at once, with its data */
    int e0 = epoll_create1(0), ready = eventfd(1, 0);
    struct epoll_event er = {.events = EPOLLIN, .data.u64 = 76};
    OK(epoll_ctl(e0, EPOLL_CTL_ADD, ready, &er));
    for (int k = 0; k < 3; k++) {
        memset(out, 0, sizeof out);
        EQ(syscall(SYS_epoll_pwait2, e0, out, 8, k == 2 ? NULL : &zero, NULL, 8), 1);
        CHECK(out[0].data.u64 == 76 && out[0].events == EPOLLIN,
              "raw epoll_pwait2 on a ready instance: data %llu",
              (unsigned long long)out[0].data.u64);
    }
    close(ready);
    close(e0);
    int e1 = syscall(SYS_epoll_create1, EPOLL_CLOEXEC);
    CHECK(e1 >= 0, "syscall(SYS_epoll_create1)");
    int efd = eventfd(1, 0);
    struct epoll_event ee = {.events = EPOLLIN, .data.u64 = 77};
    EQ(syscall(SYS_epoll_ctl, e1, EPOLL_CTL_ADD, efd, &ee), 0);
    ERR(syscall(SYS_epoll_ctl, e1, EPOLL_CTL_ADD, efd, &ee), EEXIST);
    memset(out, 0, sizeof out);
    EQ(syscall(SYS_epoll_pwait2, e1, out, 8, &zero, NULL, 8), 1);
    CHECK(out[0].data.u64 == 77 && out[0].events == EPOLLIN, "raw epoll_pwait2 data %llu",
          (unsigned long long)out[0].data.u64);
    memset(out, 0, sizeof out);
    EQ(syscall(SYS_epoll_pwait2, e1, out, 8, NULL, NULL, 8), 1);
    CHECK(out[0].data.u64 == 77, "raw epoll_pwait2 without timeout");
    memset(out, 0, sizeof out);
    EQ(syscall(SYS_epoll_pwait, e1, out, 8, 0, NULL, 8), 1);
    CHECK(out[0].data.u64 == 77, "raw epoll_pwait");
#ifdef SYS_epoll_wait
    memset(out, 0, sizeof out);
    EQ(syscall(SYS_epoll_wait, e1, out, 8, 0), 1);
    CHECK(out[0].data.u64 == 77, "raw epoll_wait");
#endif
    sigset_t none;
    sigemptyset(&none);
    ERR(syscall(SYS_epoll_pwait2, e1, out, 8, &zero, &none, 4), EINVAL);
    ERR(syscall(SYS_epoll_pwait, e1, out, 8, 0, &none, 16), EINVAL);
    /* the instance made by the raw call is one: nested, it reports its readiness */
    struct epoll_event en = {.events = EPOLLIN, .data.u64 = 78};
    OK(epoll_ctl(ep, EPOLL_CTL_ADD, e1, &en));
    EQ(epoll_wait(ep, out, 8, 0), 1);
    CHECK(out[0].data.u64 == 78, "nested raw-created instance");
    EQ(syscall(SYS_close, e1), 0);
    close(efd);
    close(ep);
    ERR(syscall(SYS_close, e1), EBADF);
    EQ(syscall(SYS_getpid), getpid()); /* everything else: the kernel */
}

/* A child made by the clone system call itself (no pthread_atfork handlers run: a copy of
   the parent's memory that nobody told about the fork), as a raw clone or a static
   runtime makes one: the library's state is the parent's (the library sees the copy by its
   wiped MADV_WIPEONFORK word, or by its pid), so the child's epoll_wait goes to the kernel:
   it returns exactly what the kernel's epoll_pwait, made by the instruction itself, says of
   the same number — natively the item (91), under the library the kernel epoll behind the
   number. A child served from its copy of the parent's state would report the item while
   the kernel reports the instance's bell: caught here. The parent's instance is intact
   afterwards. */
static void raw_clone_child(void) {
    int p[2];
    OK(pipe(p));
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 91}, out[4];
    OK(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
    EQ(write(p[1], "x", 1), 1);
    EQ(epoll_wait(ep, out, 4, 0), 1);
    long pid = syscall(SYS_clone, (long)SIGCHLD, 0L, 0L, 0L, 0L);
    if (pid == 0) {
        struct epoll_event k[4], c[4];
        memset(k, 0, sizeof k);
        memset(c, 0, sizeof c);
        long nk = insn_epoll_pwait0(ep, k, 4);
        int n = epoll_wait(ep, c, 4, 0);
        if (n != 1)
            _exit(1);
        if (nk != n || k[0].data.u64 != c[0].data.u64 || k[0].events != c[0].events)
            _exit(2);
        _exit(0);
    }
    CHECK(pid > 0, "raw clone: %ld", pid);
    int status = -1;
    EQ(waitpid((pid_t)pid, &status, 0), pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) != 1,
          "raw clone child's wait: status %#x (exit 1: not one event)", status);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) != 2,
          "raw clone child's wait was not the kernel's: status %#x (exit 2: it differs from "
          "the kernel's epoll_pwait on the same number)",
          status);
    out[0].data.u64 = 0;
    EQ(epoll_wait(ep, out, 4, 0), 1);
    CHECK(out[0].data.u64 == 91, "parent's instance after a raw clone child's wait");
    close(ep);
    close(p[0]);
    close(p[1]);
}

/* A ring set up and driven by hand, as libuv drives its epoll_ctl ring. */
struct ring {
    int fd;
    unsigned *sq_head, *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
};

static int ring_init(struct ring *r, unsigned flags) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = flags;
    r->fd = syscall(SYS_io_uring_setup, 4, &p);
    if (r->fd < 0)
        return -1;
    size_t sqlen = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cqlen = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    size_t len = sqlen > cqlen ? sqlen : cqlen;
    char *sq = mmap(0, len, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, IORING_OFF_SQ_RING);
    void *sqes = mmap(0, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
                      MAP_SHARED, r->fd, IORING_OFF_SQES);
    if (sq == MAP_FAILED || sqes == MAP_FAILED || !(p.features & IORING_FEAT_SINGLE_MMAP))
        return -1;
    r->sq_head = (unsigned *)(sq + p.sq_off.head);
    r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
    r->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
    r->sq_array = (flags & IORING_SETUP_NO_SQARRAY) ? NULL : (unsigned *)(sq + p.sq_off.array);
    r->cq_head = (unsigned *)(sq + p.cq_off.head);
    r->cq_tail = (unsigned *)(sq + p.cq_off.tail);
    r->cq_mask = (unsigned *)(sq + p.cq_off.ring_mask);
    r->cqes = (struct io_uring_cqe *)(sq + p.cq_off.cqes);
    r->sqes = sqes;
    return 0;
}

/* Submit one IORING_OP_EPOLL_CTL and return its completion's result (user_data checked). */
static int ring_ctl(struct ring *r, int ep, int op, int fd, struct epoll_event *e) {
    unsigned tail = *r->sq_tail, idx = tail & *r->sq_mask;
    struct io_uring_sqe *sqe = &r->sqes[idx];
    memset(sqe, 0, sizeof *sqe);
    sqe->opcode = IORING_OP_EPOLL_CTL;
    sqe->fd = ep;
    sqe->off = fd;
    sqe->len = op;
    sqe->addr = (unsigned long)e;
    sqe->user_data = 0xabc000 + tail;
    if (r->sq_array)
        r->sq_array[idx] = idx;
    __atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
    long n = syscall(SYS_io_uring_enter, r->fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0);
    unsigned head = *r->cq_head;
    if (n != 1 || head == __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE))
        return -10000;
    struct io_uring_cqe *cqe = &r->cqes[head & *r->cq_mask];
    int res = cqe->res;
    CHECK(cqe->user_data == 0xabc000 + tail, "cqe user_data %#llx",
          (unsigned long long)cqe->user_data);
    __atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
    return res;
}

static void uring_epoll_ctl(void) {
    unsigned flagsets[] = {0, IORING_SETUP_NO_SQARRAY};
    for (unsigned k = 0; k < 2; k++) {
        struct ring r;
        if (ring_init(&r, flagsets[k]) < 0) {
            printf("note: io_uring ring (flags %#x) unavailable, its checks skipped\n",
                   flagsets[k]);
            continue;
        }
        int ep = epoll_create1(0), p[2];
        OK(pipe(p));
        struct epoll_event e = {.events = EPOLLIN, .data.u64 = 40}, out[8];
        /* the reproduction: ADD through io_uring, then a wait sees the item */
        EQ(ring_ctl(&r, ep, EPOLL_CTL_ADD, p[0], &e), 0);
        EQ(write(p[1], "x", 1), 1);
        EQ(epoll_wait(ep, out, 8, 1000), 1);
        CHECK(out[0].data.u64 == 40 && out[0].events == EPOLLIN, "item added through io_uring");
        /* the results Linux posts */
        EQ(ring_ctl(&r, ep, EPOLL_CTL_ADD, p[0], &e), -EEXIST);
        e.data.u64 = 41;
        e.events = EPOLLIN | EPOLLET;
        EQ(ring_ctl(&r, ep, EPOLL_CTL_MOD, p[0], &e), 0);
        EQ(epoll_wait(ep, out, 8, 1000), 1);
        CHECK(out[0].data.u64 == 41, "item modified through io_uring");
        char c;
        EQ(read(p[0], &c, 1), 1);
        EQ(epoll_wait(ep, out, 8, 0), 0);
        EQ(ring_ctl(&r, ep, EPOLL_CTL_MOD, p[1], &e), -ENOENT);
        EQ(ring_ctl(&r, ep, EPOLL_CTL_ADD, 9999, &e), -EBADF);
        EQ(ring_ctl(&r, ep, EPOLL_CTL_ADD, ep, &e), -EINVAL);
        EQ(ring_ctl(&r, ep, EPOLL_CTL_DEL, p[0], NULL), 0);
        EQ(ring_ctl(&r, ep, EPOLL_CTL_DEL, p[0], NULL), -ENOENT);
        EQ(write(p[1], "y", 1), 1);
        EQ(epoll_wait(ep, out, 8, 0), 0);
        /* a ctl on a descriptor that is not an instance is the kernel's */
        EQ(ring_ctl(&r, p[0], EPOLL_CTL_ADD, p[1], &e), -EINVAL);
        close(p[0]);
        close(p[1]);
        close(ep);
        close(r.fd);
    }
}
