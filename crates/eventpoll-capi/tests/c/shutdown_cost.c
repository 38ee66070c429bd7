#define _GNU_SOURCE
/* The cost of shutdown(2) with many descriptors registered: N loopback TCP connections
 * (both ends, 2N descriptors) watched edge-triggered by one epoll instance, then M
 * shutdown(SHUT_WR) calls on the server ends, timed. Under LD_PRELOAD=libeventpoll.so
 * each call finds the objects its key-less wakeup reaches; this shows whether that cost
 * grows with the descriptors registered. Loopback only. Run by scripts/shutdown-cost.sh.
 *
 *   shutdown_cost N M   prints "n=N registered=2N shutdowns=M ns_per_shutdown=X" */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: shutdown_cost N M\n");
        return 2;
    }
    int n = atoi(argv[1]), m = atoi(argv[2]);
    if (n < 1 || m < 1) {
        fprintf(stderr, "shutdown_cost: N and M must be at least 1\n");
        return 2;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (ep < 0 || l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 4096) ||
        getsockname(l, (struct sockaddr *)&a, &al)) {
        perror("shutdown_cost: setup");
        return 1;
    }
    int *server = malloc(sizeof(int) * n);
    for (int i = 0; i < n; i++) {
        int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof a)) {
            perror("shutdown_cost: connect");
            return 1;
        }
        server[i] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.u32 = i};
        if (server[i] < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev) ||
            epoll_ctl(ep, EPOLL_CTL_ADD, server[i], &ev)) {
            perror("shutdown_cost: accept/epoll_ctl");
            return 1;
        }
    }
    struct epoll_event out[64];
    epoll_wait(ep, out, 64, 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < m; i++) {
        if (shutdown(server[i % n], SHUT_WR) != 0) {
            perror("shutdown_cost: shutdown");
            return 1;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    /* Every client end saw the FIN: the instance reports them (at most 64 a wait). */
    int seen = epoll_wait(ep, out, 64, 1000);
    if (seen < 1) {
        fprintf(stderr, "shutdown_cost: no event after the shutdowns\n");
        return 1;
    }
    double ns = ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / m;
    printf("n=%d registered=%d shutdowns=%d ns_per_shutdown=%.0f\n", n, 2 * n, m, ns);
    return 0;
}
