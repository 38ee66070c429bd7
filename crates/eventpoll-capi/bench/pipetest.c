/*
 * pipetest through the epoll C API: N pipes watched (level-triggered by default, "et" for
 * edge-triggered), K one-byte tokens in flight; each round epoll_wait, read the ready pipes,
 * write each token to a pseudo-random pipe. Prints tokens per second. Run it natively and
 * under LD_PRELOAD=libeventpoll.so to compare the kernel's epoll with eventpoll's C ABI.
 *   cc -O2 -o pipetest pipetest.c && ./pipetest [N] [K] [SECONDS] [lt|et]
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static unsigned below(unsigned n) {
    rng ^= rng >> 12; rng ^= rng << 25; rng ^= rng >> 27;
    return (unsigned)((((rng * 0x2545F4914F6CDD1Dull) >> 32) * n) >> 32);
}
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1000, k = argc > 2 ? atoi(argv[2]) : 64;
    double secs = argc > 3 ? atof(argv[3]) : 2.0;
    int et = argc > 4 && strcmp(argv[4], "et") == 0;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    int *r = malloc(n * sizeof *r), *w = malloc(n * sizeof *w);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < n; i++) {
        int p[2];
        if (pipe2(p, O_NONBLOCK | O_CLOEXEC)) { perror("pipe2"); return 1; }
        r[i] = p[0]; w[i] = p[1];
        struct epoll_event ev = {.events = EPOLLIN | (et ? EPOLLET : 0), .data.u32 = i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, r[i], &ev)) { perror("epoll_ctl"); return 1; }
    }
    for (int t = 0; t < k; t++) write(w[below(n)], "t", 1);
    struct epoll_event evs[1024];
    char buf[64];
    uint64_t tokens = 0, rounds = 0;
    double t0 = now(), end = t0 + secs;
    for (;;) {
        int m = epoll_wait(ep, evs, 1024, 1000);
        if (m <= 0) { fprintf(stderr, "lost wakeup\n"); return 1; }
        rounds++;
        for (int j = 0; j < m; j++) {
            int i = evs[j].data.u32;
            for (;;) {
                ssize_t got = read(r[i], buf, sizeof buf);
                if (got <= 0) break;
                for (ssize_t b = 0; b < got; b++) write(w[below(n)], &buf[b], 1);
                tokens += got;
                if (!et || got < (ssize_t)sizeof buf) break;
            }
        }
        if (now() >= end) break;
    }
    double dt = now() - t0;
    printf("%s N=%d K=%d: %.0f tokens/s, %.0f rounds/s\n", et ? "ET" : "LT", n, k, tokens / dt, rounds / dt);
    return 0;
}
