/*
 * writefloor: the CPU one small write costs on this machine, the floor under every delivery.
 *
 * Opens N loopback TCP connections to itself; a child process (the reader, meant for the
 * other core) drains their client ends with epoll; the parent writes MSG-byte messages
 * round-robin to their server ends for SECONDS, FRAMES messages per write(2), and reports the
 * CPU time it spent (user + system, getrusage) per write and per message, as one JSON line.
 *
 *   gcc -O2 -o bench/loadgen/writefloor bench/loadgen/writefloor.c
 *   taskset -c 0 bench/loadgen/writefloor [N=1000] [SECONDS=3] [MSG=60] [FRAMES=1] [READER_CPU=1]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void reader(int *fds, int n, int cpu) {
    if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        sched_setaffinity(0, sizeof set, &set);
    }
    int ep = epoll_create1(0);
    for (int i = 0; i < n; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fds[i]};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) < 0) die("epoll_ctl");
    }
    static char buf[1 << 16];
    struct epoll_event evs[256];
    for (;;) {
        int k = epoll_wait(ep, evs, 256, 1000);
        for (int i = 0; i < k; i++) {
            ssize_t r = read(evs[i].data.fd, buf, sizeof buf);
            if (r == 0) _exit(0);
        }
    }
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1000;
    double seconds = argc > 2 ? atof(argv[2]) : 3.0;
    int msg = argc > 3 ? atoi(argv[3]) : 60;
    int frames = argc > 4 ? atoi(argv[4]) : 1;
    int reader_cpu = argc > 5 ? atoi(argv[5]) : 1;
    signal(SIGPIPE, SIG_IGN);

    int lst = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(lst, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
    socklen_t len = sizeof addr;
    getsockname(lst, (struct sockaddr *)&addr, &len);
    if (listen(lst, 4096) < 0) die("listen");
    int *clients = malloc(sizeof(int) * n), *servers = malloc(sizeof(int) * n);
    for (int i = 0; i < n; i++) {
        clients[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(clients[i], (struct sockaddr *)&addr, sizeof addr) < 0) die("connect");
        servers[i] = accept(lst, NULL, NULL);
        if (servers[i] < 0) die("accept");
        int one = 1;
        setsockopt(servers[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(servers[i], F_SETFL, O_NONBLOCK);
    }
    pid_t child = fork();
    if (child == 0) {
        reader(clients, n, reader_cpu);
        _exit(0);
    }
    for (int i = 0; i < n; i++) close(clients[i]);

    size_t size = (size_t)msg * frames;
    char *payload = malloc(size);
    memset(payload, 'x', size);
    long writes = 0, blocked = 0;
    double start = now_s(), cpu0 = cpu_s();
    while (now_s() - start < seconds) {
        for (int i = 0; i < n; i++) {
            if (write(servers[i], payload, size) < 0) {
                if (errno == EAGAIN) blocked++;
                else die("write");
            } else {
                writes++;
            }
        }
    }
    double cpu = cpu_s() - cpu0, wall = now_s() - start;
    for (int i = 0; i < n; i++) close(servers[i]);
    kill(child, SIGTERM);
    waitpid(child, NULL, 0);
    printf("{\"connections\":%d,\"message_bytes\":%d,\"messages_per_write\":%d,\"writes\":%ld,"
           "\"blocked\":%ld,\"seconds\":%.3f,\"cpu_s\":%.3f,\"us_cpu_per_write\":%.3f,"
           "\"us_cpu_per_message\":%.3f,\"writes_per_cpu_s\":%.0f}\n",
           n, msg, frames, writes, blocked, wall, cpu, cpu / writes * 1e6,
           cpu / (writes * (double)frames) * 1e6, writes / cpu);
    return 0;
}
