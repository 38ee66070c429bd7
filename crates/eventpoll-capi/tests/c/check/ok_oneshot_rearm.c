/* Correct: a one-shot item re-armed with EPOLL_CTL_MOD after each event. */
#include "check.h"
int main(void) {
    int p[2];
    CHECK(pipe2(p, O_NONBLOCK) == 0);
    int ep = epoll_create1(0);
    CHECK(ep >= 0);
    add(ep, EPOLL_CTL_ADD, p[0], EPOLLIN | EPOLLONESHOT, 9);
    struct epoll_event ev[4];
    char buf[8];
    for (int round = 0; round < 2; round++) {
        CHECK(write(p[1], "x", 1) == 1);
        CHECK(epoll_wait(ep, ev, 4, 1000) == 1);
        CHECK(read(p[0], buf, sizeof buf) == 1);
        add(ep, EPOLL_CTL_MOD, p[0], EPOLLIN | EPOLLONESHOT, 9);
    }
    CHECK(write(p[1], "y", 1) == 1); /* ready again, and armed */
    sleep_ms(oneshot_ms() + 100);
    CHECK(epoll_wait(ep, ev, 4, 0) == 1);
    CHECK(read(p[0], buf, sizeof buf) == 1);
    add(ep, EPOLL_CTL_MOD, p[0], EPOLLIN | EPOLLONESHOT, 9);
    close(p[0]);
    close(p[1]);
    close(ep);
    return 0;
}
