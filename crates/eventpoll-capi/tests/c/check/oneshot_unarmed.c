/* oneshot-unarmed: a one-shot item fires and is never re-armed while data waits. */
#include "check.h"
int main(void) {
    int p[2];
    CHECK(pipe2(p, O_NONBLOCK) == 0);
    int ep = epoll_create1(0);
    CHECK(ep >= 0);
    add(ep, EPOLL_CTL_ADD, p[0], EPOLLIN | EPOLLONESHOT, 9);
    CHECK(write(p[1], "x", 1) == 1);
    struct epoll_event ev[4];
    CHECK(epoll_wait(ep, ev, 4, 1000) == 1);
    /* handled, but not re-armed with EPOLL_CTL_MOD; more data comes */
    CHECK(write(p[1], "y", 1) == 1);
    sleep_ms(oneshot_ms() + 100);
    CHECK(epoll_wait(ep, ev, 4, 0) == 0);
    close(p[0]);
    close(p[1]);
    close(ep);
    return 0;
}
