/* Correct: an edge-triggered reader reads until EAGAIN before it waits again. */
#include "check.h"
int main(void) {
    int p[2];
    CHECK(pipe2(p, O_NONBLOCK) == 0);
    int ep = epoll_create1(0);
    CHECK(ep >= 0);
    add(ep, EPOLL_CTL_ADD, p[0], EPOLLIN | EPOLLET, 7);
    struct epoll_event ev[4];
    for (int round = 0; round < 3; round++) {
        CHECK(write(p[1], "xyz", 3) == 3);
        CHECK(epoll_wait(ep, ev, 4, 1000) == 1);
        char c;
        while (read(p[0], &c, 1) == 1) {
        }
        CHECK(errno == EAGAIN);
    }
    CHECK(epoll_wait(ep, ev, 4, 50) == 0);
    close(p[0]);
    close(p[1]);
    close(ep);
    return 0;
}
