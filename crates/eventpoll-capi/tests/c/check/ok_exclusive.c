/* Correct: workers blocked in two instances watch one eventfd with EPOLLEXCLUSIVE. */
#include "check.h"
static int efd;
static void *worker(void *arg) {
    int ep = *(int *)arg;
    struct epoll_event ev[4];
    int n = epoll_wait(ep, ev, 4, 500);
    CHECK(n >= 0);
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
        add(ep[i], EPOLL_CTL_ADD, efd, EPOLLIN | EPOLLEXCLUSIVE, 1);
    }
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&t[i], NULL, worker, &ep[i]) == 0);
    sleep_ms(200);
    uint64_t one = 1;
    CHECK(write(efd, &one, 8) == 8);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    close(ep[0]);
    close(ep[1]);
    close(efd);
    return 0;
}
