/* ghost-item: close one of two numbers of a pipe while its item is registered. */
#include "check.h"
int main(void) {
    int p[2];
    CHECK(pipe2(p, O_NONBLOCK) == 0);
    int ep = epoll_create1(0);
    CHECK(ep >= 0);
    add(ep, EPOLL_CTL_ADD, p[0], EPOLLIN, (uint64_t)p[0]);
    int keep = dup(p[0]);
    CHECK(keep >= 0);
    CHECK(close(p[0]) == 0); /* the item stays: `keep` holds the file */
    close(keep);
    close(p[1]);
    close(ep);
    return 0;
}
