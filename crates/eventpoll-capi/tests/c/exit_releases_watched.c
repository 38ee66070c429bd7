/*
 * A process's watched files end with it: right after waitpid returns, a listening socket
 * the child had in an epoll instance no longer holds its port (the parent's bind and listen
 * of the same address succeed, as on Linux: do_exit closes the files, and runs their final
 * fputs, before exit_notify tells the parent), and the write end of a pipe it watched is
 * closed (the parent's non-blocking read gives end of file, not EAGAIN) — whether the child
 * exits with _exit or is killed by SIGTERM.
 *
 * Under the library's io_uring driver this does not hold (the C ABI's README, deviation
 * 15): an armed io_uring poll holds a reference to its file, dropped by the ring's teardown
 * on a kernel work queue after the process is gone. That is why the kernel-epoll driver is
 * the default. With `--report` the program only counts (for that driver); without it every
 * round is a check.
 *
 * Built and run by tests/capi.rs: against glibc alone (the kernel: proof the expectations
 * are Linux's) and under LD_PRELOAD with the default driver, `epoll` and `poll`. Loopback
 * only. Prints one line per failure and a closing "N passed, M failed".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tally.h"

enum { ROUNDS = 60 };

/* A listening TCP socket on 127.0.0.1:port (SO_REUSEADDR, as servers set it), or -1 with
 * errno. */
static int listener(unsigned short port) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 8) < 0) {
        int e = errno;
        close(s);
        errno = e;
        return -1;
    }
    return s;
}

/* A free loopback port: one the kernel picks for a socket closed at once. */
static unsigned short free_port(void) {
    int s = listener(0);
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    if (s < 0 || getsockname(s, (struct sockaddr *)&a, &len) < 0) {
        perror("free port");
        exit(2);
    }
    close(s);
    return ntohs(a.sin_port);
}

/* The child: the listener and the pipe's write end in one instance, then "ready" and
 * _exit(0), or sleep until killed. */
static void child(unsigned short port, int ready, int out, int killed) {
    /* The last round's child may still hold the port where the parent's check failed (the
     * io_uring driver): wait for it (up to 2 s), so that every round runs. */
    int l = -1;
    for (int i = 0; i < 2000 && (l = listener(port)) < 0 && errno == EADDRINUSE; i++)
        usleep(1000);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN};
    if (l < 0 || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev) < 0) {
        printf("child: set-up: %s\n", strerror(errno));
        _exit(3);
    }
    ev.events = EPOLLOUT;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, out, &ev) < 0) {
        printf("child: ADD pipe: %s\n", strerror(errno));
        _exit(3);
    }
    /* A wait, so that the watch is armed wherever the host arms lazily. */
    struct epoll_event got[2];
    epoll_wait(ep, got, 2, 0);
    if (write(ready, "r", 1) != 1)
        _exit(3);
    if (killed)
        for (;;)
            pause();
    _exit(0);
}

int main(int argc, char **argv) {
    int report = argc > 1 && strcmp(argv[1], "--report") == 0;
    unsigned short port = free_port();
    for (int killed = 0; killed <= 1; killed++) {
        int refused = 0, open_writer = 0;
        for (int round = 0; round < ROUNDS; round++) {
            int sync[2], data[2];
            if (pipe2(sync, O_CLOEXEC) < 0 || pipe2(data, O_CLOEXEC | O_NONBLOCK) < 0) {
                perror("pipe2");
                return 2;
            }
            pid_t pid = fork();
            if (pid < 0) {
                perror("fork");
                return 2;
            }
            if (pid == 0) {
                close(sync[0]);
                close(data[0]);
                child(port, sync[1], data[1], killed);
            }
            close(sync[1]);
            close(data[1]);
            char c;
            if (read(sync[0], &c, 1) != 1) {
                printf("child %d did not get ready\n", round);
                return 2;
            }
            close(sync[0]);
            if (killed)
                kill(pid, SIGTERM);
            int status;
            waitpid(pid, &status, 0);
            int l = listener(port);
            int err = errno;
            ssize_t r = read(data[0], &c, 1);
            int rerr = errno;
            if (l < 0)
                refused++;
            if (r != 0)
                open_writer++;
            if (!report) {
                CHECK(l >= 0, "%s, round %d: the port is still bound after waitpid: %s",
                      killed ? "SIGTERM" : "_exit", round, strerror(err));
                CHECK(r == 0, "%s, round %d: the pipe's writer is still open: read %zd (%s)",
                      killed ? "SIGTERM" : "_exit", round, r, r < 0 ? strerror(rerr) : "data");
            }
            if (l >= 0)
                close(l);
            close(data[0]);
        }
        printf("rounds %s: %d of %d rebinds refused, %d of %d pipe writers still open\n",
               killed ? "SIGTERM" : "_exit", refused, ROUNDS, open_writer, ROUNDS);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
