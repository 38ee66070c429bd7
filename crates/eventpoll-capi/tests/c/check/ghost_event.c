/* ghost-event: the item of a closed number reports, and the number is another pipe now
 * (a ghost event needs a ghost item: this program has both, nothing else). */
#include "check.h"
int main(void) {
    int p[2], q[2];
    CHECK(pipe2(p, O_NONBLOCK) == 0);
    int ep = epoll_create1(0);
    CHECK(ep >= 0);
    int fd = p[0];
    add(ep, EPOLL_CTL_ADD, fd, EPOLLIN, (uint64_t)fd);
    int keep = dup(fd);
    CHECK(keep >= 0);
    CHECK(close(fd) == 0);
    CHECK(pipe2(q, O_NONBLOCK) == 0); /* takes the closed number */
    CHECK(write(p[1], "x", 1) == 1);
    struct epoll_event ev[4];
    int n = epoll_wait(ep, ev, 4, 1000);
    CHECK(n == 1 && ev[0].data.u64 == (uint64_t)fd);
    close(q[0]);
    close(q[1]);
    close(keep);
    close(p[1]);
    close(ep);
    return 0;
}
