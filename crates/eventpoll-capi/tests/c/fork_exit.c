/*
 * A forked child's exit closes its descriptors before its parent's waitpid returns
 * (kernel/exit.c: do_exit runs exit_files, and the deferred final fputs in
 * exit_task_work, before exit_notify tells the parent).
 *
 * The child of a process that has an epoll instance duplicates a descriptor (fcntl
 * F_DUPFD, dup, dup2, dup3: calls the library interposes and through which it learns the
 * descriptor's description) and exits. Right after waitpid the parent must see the file's
 * last reference gone: a FIFO reader the child opened no longer exists (a non-blocking
 * writer's open is ENXIO), and a pipe's write end the child held is closed (the reader
 * reads end of file). The library once registered such a description with its host driver
 * in the child, and the io_uring driver's poll held the file until the child's ring was torn
 * down, some milliseconds after the exit.
 *
 * Built and run like threads.c by tests/capi.rs: against glibc alone (the kernel: proof
 * the expectations are Linux's) and under LD_PRELOAD with each driver. Prints one line per
 * failure, one "rounds" line per measured case, and a closing "N passed, M failed".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tally.h"

enum { ROUNDS = 40 };

/* How the child duplicates its descriptor. */
enum how { BY_FCNTL, BY_DUP, BY_DUP2, BY_DUP3, HOW_COUNT };
static const char *how_name[] = {"fcntl(F_DUPFD)", "dup", "dup2", "dup3"};

/* Duplicate `fd` in the child the way `how` says, and close the original. */
static void duplicate(int fd, enum how how) {
    int n = -1;
    switch (how) {
    case BY_FCNTL:
        n = fcntl(fd, F_DUPFD, 200);
        break;
    case BY_DUP:
        n = dup(fd);
        break;
    case BY_DUP2:
        n = dup2(fd, 201);
        break;
    case BY_DUP3:
        n = dup3(fd, 202, O_CLOEXEC);
        break;
    default:
        break;
    }
    if (n >= 0)
        close(fd);
}

/* The child opens a FIFO's reader, duplicates it and exits: after waitpid a writer's
 * non-blocking open finds no reader. Returns how many rounds found the reader still open. */
static int fifo_reader_gone(const char *path, enum how how) {
    int kept = 0;
    for (int i = 0; i < ROUNDS; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            int r = open(path, O_RDONLY | O_NONBLOCK);
            if (r >= 0)
                duplicate(r, how);
            _exit(r >= 0 ? 0 : 1);
        }
        if (pid < 0)
            return -1;
        int status = 0;
        waitpid(pid, &status, 0);
        int w = open(path, O_WRONLY | O_NONBLOCK);
        if (w >= 0) {
            kept++;
            close(w);
        } else if (errno != ENXIO) {
            printf("open writer: %s\n", strerror(errno));
            kept++;
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            kept++;
        /* Let a reader that outlived the child go before the next round. */
        if (w >= 0)
            usleep(20000);
    }
    return kept;
}

/* The child holds a pipe's only write end (the parent closed its copy), duplicates it and
 * exits: after waitpid the parent reads end of file. */
static int pipe_writer_gone(enum how how) {
    int kept = 0;
    for (int i = 0; i < ROUNDS; i++) {
        int p[2];
        if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0)
            return -1;
        pid_t pid = fork();
        if (pid == 0) {
            close(p[0]);
            duplicate(p[1], how);
            _exit(0);
        }
        close(p[1]);
        if (pid < 0) {
            close(p[0]);
            return -1;
        }
        waitpid(pid, NULL, 0);
        char c;
        ssize_t n = read(p[0], &c, 1);
        if (n != 0)
            kept++;
        close(p[0]);
    }
    return kept;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    char dir[] = "/tmp/eventpoll-fork-exit-XXXXXX";
    if (!mkdtemp(dir)) {
        printf("mkdtemp: %s\n0 passed, 1 failed\n", strerror(errno));
        return 1;
    }
    char path[64];
    snprintf(path, sizeof path, "%s/fifo", dir);
    CHECK(mkfifo(path, 0600) == 0, "mkfifo: %s", strerror(errno));
    /* The process has an instance (the library's driver is running). */
    int ep = epoll_create1(EPOLL_CLOEXEC);
    CHECK(ep >= 0, "epoll_create1: %s", strerror(errno));
    for (int how = 0; how < HOW_COUNT; how++) {
        int kept = fifo_reader_gone(path, how);
        printf("rounds: FIFO reader duplicated by %s in the child, still open after waitpid: %d "
               "of %d\n",
               how_name[how], kept, ROUNDS);
        CHECK(kept == 0, "FIFO reader (%s) outlived the child in %d of %d rounds",
              how_name[how], kept, ROUNDS);
        kept = pipe_writer_gone(how);
        printf("rounds: pipe writer duplicated by %s in the child, still open after waitpid: %d "
               "of %d\n",
               how_name[how], kept, ROUNDS);
        CHECK(kept == 0, "pipe writer (%s) outlived the child in %d of %d rounds",
              how_name[how], kept, ROUNDS);
    }
    close(ep);
    unlink(path);
    rmdir(dir);
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
