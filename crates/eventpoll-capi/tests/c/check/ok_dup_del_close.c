/* Correct: with a dup alive, the item is deleted before its number is closed. */
#include "check.h"
int main(void) {
    int p[2];
    CHECK(pipe2(p, O_NONBLOCK) == 0);
    int ep = epoll_create1(0);
    CHECK(ep >= 0);
    add(ep, EPOLL_CTL_ADD, p[0], EPOLLIN, (uint64_t)p[0]);
    int keep = dup(p[0]);
    CHECK(keep >= 0);
    CHECK(epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL) == 0);
    CHECK(close(p[0]) == 0);
    CHECK(write(p[1], "x", 1) == 1);
    struct epoll_event ev[4];
    CHECK(epoll_wait(ep, ev, 4, 50) == 0);
    close(keep);
    close(p[1]);
    close(ep);
    return 0;
}
