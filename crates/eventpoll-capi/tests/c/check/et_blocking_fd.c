/* et-blocking-fd: an edge-triggered item for a blocking pipe. */
#include "check.h"
int main(void) {
    int p[2];
    CHECK(pipe(p) == 0);
    int ep = epoll_create1(0);
    CHECK(ep >= 0);
    add(ep, EPOLL_CTL_ADD, p[0], EPOLLIN | EPOLLET, 3);
    close(p[0]);
    close(p[1]);
    close(ep);
    return 0;
}
