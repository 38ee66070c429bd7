/* ghost-item through SCM_RIGHTS: the registered number of a pipe is sent over a unix socket
 * to this very process and received as another number, then closed while its item is
 * registered: the received number keeps the description (and the item) alive, and the
 * item's event comes under a number that is now another pipe (ghost-event). Prints
 * `keeper=N`, the received number, which the ghost-item finding must name. */
#include "check.h"
#include <sys/socket.h>

static int pass_over(int sv[2], int fd) {
    char byte = 'f';
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof u);
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                         .msg_controllen = sizeof u.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    CHECK(sendmsg(sv[0], &msg, 0) == 1);
    memset(&u, 0, sizeof u);
    struct msghdr in = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                        .msg_controllen = sizeof u.buf};
    CHECK(recvmsg(sv[1], &in, 0) == 1);
    c = CMSG_FIRSTHDR(&in);
    CHECK(c && c->cmsg_type == SCM_RIGHTS);
    int got;
    memcpy(&got, CMSG_DATA(c), sizeof got);
    return got;
}

int main(void) {
    int p[2], sv[2];
    CHECK(pipe2(p, O_NONBLOCK) == 0);
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    int ep = epoll_create1(0);
    CHECK(ep >= 0);
    add(ep, EPOLL_CTL_ADD, p[0], EPOLLIN, (uint64_t)p[0]);
    int keep = pass_over(sv, p[0]);
    CHECK(keep >= 0 && keep != p[0]);
    printf("keeper=%d\n", keep);
    fflush(stdout);
    CHECK(close(p[0]) == 0); /* the item stays: the received number holds the file */
    int q[2]; /* takes the closed number: the item's number is now another pipe */
    CHECK(pipe2(q, O_NONBLOCK) == 0);
    /* As on Linux, the item still reports under its old number. */
    CHECK(write(p[1], "x", 1) == 1);
    struct epoll_event ev;
    CHECK(epoll_wait(ep, &ev, 1, 1000) == 1);
    CHECK(epoll_ctl(ep, EPOLL_CTL_DEL, keep, NULL) == -1 && errno == ENOENT);
    close(keep);
    close(q[0]);
    close(q[1]);
    close(p[1]);
    close(sv[0]);
    close(sv[1]);
    close(ep);
    return 0;
}
