/* Correct: an edge-triggered reader drains a loopback TCP socket to EAGAIN while another
 * thread keeps writing, so new data often arrives between the drain and the next wait. That
 * data brings its own edge: not an undrained edge (the checker must not name the data it
 * sees a moment before the data's wakeup reaches the instance). */
#include "check.h"
#include <netinet/in.h>
#include <sys/socket.h>

#define BYTES 3000

static int writer_fd;

static void *writer(void *arg) {
    (void)arg;
    for (int i = 0; i < BYTES; i++) {
        CHECK(write(writer_fd, "x", 1) == 1);
        for (volatile int spin = 0; spin < 2000 + (i * 7919) % 3000; spin++) {
        }
    }
    return NULL;
}

int main(void) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(l >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    CHECK(bind(l, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(l, 1) == 0);
    CHECK(getsockname(l, (struct sockaddr *)&a, &len) == 0);
    writer_fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(connect(writer_fd, (struct sockaddr *)&a, sizeof a) == 0);
    int r = accept4(l, NULL, NULL, SOCK_NONBLOCK);
    CHECK(r >= 0);
    int ep = epoll_create1(0);
    CHECK(ep >= 0);
    add(ep, EPOLL_CTL_ADD, r, EPOLLIN | EPOLLET, 9);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, writer, NULL) == 0);
    int got = 0;
    struct epoll_event ev[4];
    while (got < BYTES) {
        CHECK(epoll_wait(ep, ev, 4, 5000) == 1);
        char buf[64];
        ssize_t n;
        while ((n = read(r, buf, sizeof buf)) > 0) {
            got += (int)n;
        }
        CHECK(n < 0 && errno == EAGAIN);
    }
    CHECK(got == BYTES);
    CHECK(pthread_join(t, NULL) == 0);
    close(r);
    close(writer_fd);
    close(l);
    close(ep);
    return 0;
}
