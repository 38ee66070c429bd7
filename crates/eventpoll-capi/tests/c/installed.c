/* Built against an installed libeventpoll with pkg-config and run with no variables set:
 * it must find the library (run path from eventpoll.pc) and use it for epoll. */
#include <eventpoll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void) {
    int p[2];
    if (pipe(p) != 0) return 2;
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 42};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) != 0) return 3;
    if (write(p[1], "x", 1) != 1) return 4;
    struct epoll_event out[4];
    int n = epoll_wait(ep, out, 4, 1000);
    /* Which library served the call: its path among the mappings. */
    char line[512], lib[512] = "";
    FILE *maps = fopen("/proc/self/maps", "r");
    while (maps && fgets(line, sizeof line, maps))
        if (strstr(line, "libeventpoll.so")) {
            snprintf(lib, sizeof lib, "%s", strchr(line, '/') ? strchr(line, '/') : line);
            break;
        }
    if (maps) fclose(maps);
    lib[strcspn(lib, "\n")] = 0;
    printf("wait %d data %llu lib %s\n", n, n > 0 ? (unsigned long long)out[0].data.u64 : 0ULL, lib);
    return n == 1 && out[0].data.u64 == 42 && lib[0] ? 0 : 1;
}
