/* A wait's events buffer on the waiting thread's own stack needs no pointer probe under
   libeventpoll (src/user.rs, on_own_stack); any other buffer keeps it. Every wait's result is
   checked against what Linux gives (the program also runs against glibc alone); under the
   library, the probes each thread makes are counted through eventpoll_user_probes()
   (found with dlsym: absent natively, then only the results are checked).

   Cases: the main thread's stack, a heap buffer, a dead frame well below the stack pointer,
   a buffer reaching past the top of the stack, one just above it, epoll_ctl's event on the
   stack and on the heap, a pthread's stack (glibc's and one the program gives), a coroutine
   (makecontext) and a signal handler on a sigaltstack, both on heap memory. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

static int passed, failed;
#define CHECK(cond, what)                                                                  \
    do {                                                                                   \
        if (cond) {                                                                        \
            passed++;                                                                      \
        } else {                                                                           \
            failed++;                                                                      \
            fprintf(stderr, "FAIL %s:%d %s\n", __FILE__, __LINE__, what);                  \
        }                                                                                  \
    } while (0)

#define WAITS 50

static unsigned long (*probes_fn)(void);
static int ep; /* one level-triggered item, always ready: every wait gives one event */

static long probes(void) { return probes_fn ? (long)probes_fn() : -1; }

/* WAITS waits into ev (max records): each must give exactly the ready event. */
static void waits(struct epoll_event *ev, int max, const char *what) {
    for (int i = 0; i < WAITS; i++) {
        memset(ev, 0, sizeof *ev);
        int n = epoll_wait(ep, ev, max, 0);
        if (n != 1 || ev[0].events != EPOLLIN || ev[0].data.u64 != 0x1234567890abcdefull) {
            failed++;
            fprintf(stderr, "FAIL %s: wait %d gave %d (errno %d), events %#x\n", what, i, n,
                    errno, ev[0].events);
            return;
        }
    }
    passed++;
}

/* Probes made by WAITS waits into ev, after one wait that may probe once. */
static long probes_of_waits(struct epoll_event *ev, int max, const char *what) {
    waits(ev, 1, what);
    long before = probes();
    waits(ev, max, what);
    return probes() - before;
}

static void expect_fast(long n, const char *what) {
    if (probes_fn) {
        if (n != 0)
            fprintf(stderr, "%s: %ld probes in %d waits\n", what, n, WAITS);
        CHECK(n == 0, what);
    }
}

static void expect_probed(long n, const char *what) {
    if (probes_fn) {
        if (n < WAITS)
            fprintf(stderr, "%s: %ld probes in %d waits\n", what, n, WAITS);
        CHECK(n >= WAITS, what);
    }
}

/* The buffer is a local of a deep frame that has returned: 256 KiB below the caller's
   stack pointer, far below the library's own frames during the waits. */
static volatile uintptr_t dead;
static __attribute__((noinline)) void make_dead_frame(void) {
    char pad[256 * 1024];
    memset(pad, 0, sizeof pad);
    dead = (uintptr_t)(void *)pad;
    __asm__ volatile("" ::"r"(pad) : "memory");
}

/* Memory just above the top of the program's thread stack (mapped, not the stack). */
static struct epoll_event *above_top;

static void *thread_body(void *arg) {
    const char *name = arg;
    struct epoll_event ev[16];
    char what[128];
    snprintf(what, sizeof what, "%s: stack buffer", name);
    expect_fast(probes_of_waits(ev, 16, what), what);
    struct epoll_event *heap = malloc(16 * sizeof *heap);
    snprintf(what, sizeof what, "%s: heap buffer", name);
    expect_probed(probes_of_waits(heap, 16, what), what);
    free(heap);
    if (above_top) {
        snprintf(what, sizeof what, "%s: buffer above the stack's top", name);
        expect_probed(probes_of_waits(above_top, 16, what), what);
    }
    return NULL;
}

static long coroutine_probes;
static ucontext_t main_ctx, co_ctx;
static void coroutine(void) {
    struct epoll_event ev[4]; /* on the coroutine's stack (heap memory) */
    coroutine_probes = probes_of_waits(ev, 4, "coroutine buffer");
}

static long alt_probes;
static void on_usr1(int sig) {
    (void)sig;
    struct epoll_event ev[4]; /* on the alternate stack: not the thread's stack */
    alt_probes = probes_of_waits(ev, 4, "sigaltstack handler buffer");
}

int main(void) {
    probes_fn = (unsigned long (*)(void))dlsym(RTLD_DEFAULT, "eventpoll_user_probes");
    ep = epoll_create1(0);
    int efd = eventfd(1, 0);
    struct epoll_event add = {.events = EPOLLIN, .data.u64 = 0x1234567890abcdefull};
    CHECK(ep >= 0 && efd >= 0, "setup");
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, efd, &add) == 0, "add");

    /* main thread, buffer in main's frame */
    struct epoll_event ev[64];
    expect_fast(probes_of_waits(ev, 64, "main: stack buffer"), "main: stack buffer");

    /* main thread, heap buffer: one probe per wait */
    struct epoll_event *heap = malloc(64 * sizeof *heap);
    expect_probed(probes_of_waits(heap, 64, "main: heap buffer"), "main: heap buffer");

    /* a dead frame below the stack pointer: probed */
    make_dead_frame();
    struct epoll_event *below = (struct epoll_event *)dead;
    expect_probed(probes_of_waits(below, 16, "main: dead frame"), "main: dead frame");

    /* a stack buffer whose maxevents reaches past the top of the stack: the whole buffer is
       not on the stack, but the one slot written (one event ready) is: no probe */
    {
        extern void *__libc_stack_end;
        extern char **environ;
        struct epoll_event top[2];
        uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
        uintptr_t end = ((uintptr_t)__libc_stack_end + pg - 1) & ~(pg - 1);
        int max = (int)((end - (uintptr_t)top) / sizeof top[0]) + 2;
        /* The buffer's end must stay inside the stack mapping (else EFAULT: the end of user
           space may follow it): the environment's strings, at the mapping's top, must reach
           past the page of argc (tests/capi.rs passes a long variable). */
        uintptr_t strings_end = 0; /* the end of the highest environment string */
        for (char **e = environ; e && *e; e++)
            if ((uintptr_t)*e + strlen(*e) + 1 > strings_end)
                strings_end = (uintptr_t)*e + strlen(*e) + 1;
        if (strings_end >= end + 2 * sizeof top[0]) {
            long n = probes_of_waits(top, max, "main: buffer past the stack's top");
            expect_fast(n, "main: buffer past the stack's top");
        } else {
            printf("skipped: buffer past the stack's top (environment too small)\n");
        }
    }

    /* epoll_ctl's event: read without a probe from the stack, probed on the heap */
    {
        struct epoll_event mod = {.events = EPOLLIN, .data.u64 = 0x1234567890abcdefull};
        /* One MOD first, which may probe once: `mod` may lie on a lower page of the stack
           than any buffer before it (the stack's start is randomised within its page),
           and each new lowest page is probed once per thread. */
        int ok = epoll_ctl(ep, EPOLL_CTL_MOD, efd, &mod) == 0;
        long before = probes();
        for (int i = 0; i < WAITS; i++)
            ok &= epoll_ctl(ep, EPOLL_CTL_MOD, efd, &mod) == 0;
        CHECK(ok, "MOD with the event on the stack");
        expect_fast(probes() - before, "main: epoll_ctl event on the stack");
        struct epoll_event *hmod = malloc(sizeof *hmod);
        *hmod = mod;
        before = probes();
        for (int i = 0; i < WAITS; i++)
            ok &= epoll_ctl(ep, EPOLL_CTL_MOD, efd, hmod) == 0;
        CHECK(ok, "MOD with the event on the heap");
        expect_probed(probes() - before, "main: epoll_ctl event on the heap");
        free(hmod);
    }

    /* the fast path again after all that */
    expect_fast(probes_of_waits(ev, 64, "main: stack buffer again"), "main: stack buffer again");

    /* threads: a glibc stack, and one the program gives */
    pthread_t t;
    CHECK(pthread_create(&t, NULL, thread_body, "glibc thread") == 0, "pthread_create");
    pthread_join(t, NULL);

    size_t sz = 1 << 20;
    char *mine = mmap(NULL, 2 * sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(mine != MAP_FAILED, "mmap stack");
    above_top = (struct epoll_event *)(void *)(mine + sz);
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstack(&a, mine, sz);
    CHECK(pthread_create(&t, &a, thread_body, "thread on the program's stack") == 0,
          "pthread_create on the program's stack");
    pthread_join(t, NULL);
    pthread_attr_destroy(&a);

    /* a coroutine on a stack of heap memory (makecontext): probed */
    {
        size_t csz = 1 << 18;
        char *cstack = malloc(csz);
        CHECK(cstack && getcontext(&co_ctx) == 0, "getcontext");
        co_ctx.uc_stack.ss_sp = cstack;
        co_ctx.uc_stack.ss_size = csz;
        co_ctx.uc_link = &main_ctx;
        makecontext(&co_ctx, coroutine, 0);
        CHECK(swapcontext(&main_ctx, &co_ctx) == 0, "swapcontext");
        expect_probed(coroutine_probes, "coroutine buffer");
        free(cstack);
    }

    /* a signal handler on an alternate stack (heap memory): probed */
    stack_t ss = {.ss_sp = malloc(1 << 18), .ss_size = 1 << 18, .ss_flags = 0};
    CHECK(sigaltstack(&ss, NULL) == 0, "sigaltstack");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_ONSTACK;
    sigaction(SIGUSR1, &sa, NULL);
    raise(SIGUSR1);
    expect_probed(alt_probes, "sigaltstack handler buffer");

    free(heap);
    if (!probes_fn)
        printf("no library: results checked, probes not counted\n");
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
