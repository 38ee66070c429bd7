/* undrained-edge: an edge-triggered reader reads one byte of two, then waits. */
#include "check.h"
int main(void) {
    int p[2];
    CHECK(pipe2(p, O_NONBLOCK) == 0);
    int ep = epoll_create1(0);
    CHECK(ep >= 0);
    add(ep, EPOLL_CTL_ADD, p[0], EPOLLIN | EPOLLET, 7);
    CHECK(write(p[1], "xy", 2) == 2);
    struct epoll_event ev[4];
    CHECK(epoll_wait(ep, ev, 4, 1000) == 1);
    char c;
    CHECK(read(p[0], &c, 1) == 1); /* one byte left, and no new edge will come */
    CHECK(epoll_wait(ep, ev, 4, 50) == 0);
    close(p[0]);
    close(p[1]);
    close(ep);
    return 0;
}
