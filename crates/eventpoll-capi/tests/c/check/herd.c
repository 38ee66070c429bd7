/* herd: two threads block in two instances watching one eventfd without EPOLLEXCLUSIVE;
 * one write wakes both. */
#include "check.h"
static int efd;
static void *waiter(void *arg) {
    int ep = *(int *)arg;
    struct epoll_event ev[4];
    CHECK(epoll_wait(ep, ev, 4, 2000) == 1);
    return NULL;
}
int main(void) {
    efd = eventfd(0, EFD_NONBLOCK);
    CHECK(efd >= 0);
    int ep[2];
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        ep[i] = epoll_create1(0);
        CHECK(ep[i] >= 0);
        add(ep[i], EPOLL_CTL_ADD, efd, EPOLLIN, 1);
    }
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&t[i], NULL, waiter, &ep[i]) == 0);
    sleep_ms(200); /* both blocked */
    uint64_t one = 1;
    CHECK(write(efd, &one, 8) == 8);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    close(ep[0]);
    close(ep[1]);
    close(efd);
    return 0;
}
