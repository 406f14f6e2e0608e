/*
 * loadgen: an Engine.IO v4 / Socket.IO v5 load generator over raw websockets.
 *
 * One thread, one epoll instance (edge-triggered), big non-blocking reads into one shared
 * buffer, websocket frame headers scanned in place.  Delivered `42["message",...]` frames are
 * counted from their first bytes only; the send timestamp inside the message text
 * ("@@<CLOCK_MONOTONIC ns>:...") is parsed on sampled frames only.  Senders and receivers
 * live in this one process, so latency is measured on one clock.
 *
 * It is driven by commands, one per line on stdin, and answers each with one JSON line on
 * stdout.  Between and during commands it keeps every connection serviced (Engine.IO pings
 * answered with pongs, websocket pings with pongs).
 *
 *   connect N ROOMS        open clients until N exist; client i joins room "r<i % ROOMS>"
 *                          (ROOMS = 0: no room).  Answers when all are connected or failed.
 *   sync TIMEOUT_S         each room's sender sends marker messages until every member has
 *                          received one (proves the joins took effect), then waits for quiet.
 *   step RATE WARMUP_S MEASURE_S SENDERS
 *                          open-loop load at RATE offered deliveries/s (message rate =
 *                          RATE / room size); SENDERS = "room" (one sender per room, the
 *                          room's first client) or "all" (every client in turn).  Warm-up,
 *                          measured window, then a drain; answers counts and latency.
 *   acks SECONDS WINDOW [RATE]
 *                          every client keeps up to WINDOW acknowledged `message` events
 *                          ({channel, message, client_id}) in flight, sending at most RATE
 *                          a second each (0 or absent: closed loop); answers acks/s.
 *   hold SECONDS           keep the connections, answer heartbeats; answers who is alive and
 *                          who received an Engine.IO ping meanwhile.
 *   burst N [TIMEOUT_S]   exactly N messages over the rooms' senders; waits for every delivery
 *                          (exact counts, for tests).
 *   quiet MAX_S            wait until no delivery has arrived for 300 ms (at most MAX_S).
 *   stats                  counters so far.
 *   quit
 *
 * Options: --port P (required), --host 127.0.0.1, --src-addrs K (bind clients to 127.0.0.2 ..
 * 127.0.0.(K+1), so that more than ~28k clients fit), --pid PID (server whose CPU time is read
 * from /proc/PID/stat), --size BYTES (message text length), --read-size BYTES (largest read;
 * small values exercise frames split across reads), --inflight N (handshakes in progress at
 * once), --path PATH (default /socket.io/).
 *
 * Build: gcc -O2 -Wall -o loadgen loadgen.c  (the websocket framing is in ws.h, beside it)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ws.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum { S_FREE, S_CONNECTING, S_HTTP, S_WAIT_OPEN, S_WAIT_CONNECT, S_READY, S_CLOSED };

#define LEFTOVER_MAX 4096 /* incomplete tails up to this size are kept; larger frames skipped */
#define ACK_RING 64       /* most acknowledged sends one client keeps in flight */
#define STDIN_TAG UINT64_MAX
#define MAX_SAMPLES (4u << 20)

typedef struct {
    int fd;
    uint8_t state;
    uint8_t dirty;
    uint8_t seen; /* received a delivery since the last sync mark */
    uint8_t joined;
    int32_t room;
    uint16_t at_off; /* where "@@" sat in this client's last delivery (0: not known yet) */
    uint32_t lo_len;
    uint8_t *lo; /* leftover bytes of an incomplete frame (or HTTP head) */
    uint8_t *ob; /* outgoing bytes not yet written */
    uint32_t ob_off, ob_len, ob_cap;
    uint64_t skip; /* payload bytes of a large frame still to be skipped */
    uint32_t pings, ping_mark;
    uint32_t ack_next, outstanding;
    uint64_t *ack_ts;
    uint64_t next_ns; /* paced acknowledged sends: when this client may send next */
} conn_t;

static struct {
    const char *host;
    int port;
    int src_addrs;
    int pid;
    int msg_size;
    size_t read_size;
    int max_inflight;
    const char *path;
} opt = {"127.0.0.1", 0, 1, 0, 48, 1 << 20, 256, "/socket.io/"};

static int ep;
static conn_t *conns;
static uint32_t nconns, conns_cap;
static uint32_t *dirty;
static uint32_t ndirty;
static uint8_t *rbuf;

/* counters */
static uint64_t g_deliveries, g_other_events, g_other_frames, g_pings, g_acks_ok, g_acks_err;
static uint64_t g_bytes_in, g_frames;
static uint32_t g_ready, g_inflight, g_closed, g_failed;
static uint32_t g_fail_connect, g_fail_http, g_fail_eio, g_closed_eof, g_closed_ws, g_closed_eio;
static uint32_t g_overflow;
static int g_first_errno;
static char g_first_error[256];

/* latency sampling */
static uint64_t *samples;
static uint32_t nsamples, samples_dropped;
static uint64_t sample_mask = 15;
static uint64_t sample_min_ts = UINT64_MAX; /* only messages sent at or after this are sampled */
static int sync_active;
static uint8_t g_epoch = '0'; /* letter after "@@" in this step's messages ('0': sync) */
static uint64_t g_epoch_deliveries, g_stale;

/* acknowledged sends */
static int acks_active;
static uint64_t g_ack_interval;
static uint64_t *ack_samples;
static uint32_t nack_samples;

static char line[4096];
static size_t line_len;
static int stdin_eof, stdin_direct;

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double self_cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static double server_cpu_s(void) {
    if (!opt.pid) return -1;
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", opt.pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    /* after ')': state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(14)
     * stime(15) */
    unsigned long long ut = 0, st = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* CPU seconds all cores spent busy since boot (from /proc/stat), to see other load */
static double machine_busy_s(void) {
    char buf[512];
    int fd = open("/proc/stat", O_RDONLY);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    unsigned long long v[8] = {0};
    if (sscanf(buf, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
               &v[4], &v[5], &v[6], &v[7]) < 4)
        return -1;
    /* irq and softirq time included: processes are charged for the softirq work done in
     * their context (loopback traffic), so leaving it out makes "other" negative */
    unsigned long long busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    return (double)busy / (double)sysconf(_SC_CLK_TCK);
}

static void note_error(int err, const char *fmt, ...) {
    if (g_first_error[0]) return;
    g_first_errno = err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_first_error, sizeof g_first_error, fmt, ap);
    va_end(ap);
    for (char *p = g_first_error; *p; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 32) *p = ' ';
}

/* ---------------------------------------------------------------- output */

static void mark_dirty(uint32_t i) {
    if (!conns[i].dirty) {
        conns[i].dirty = 1;
        dirty[ndirty++] = i;
    }
}

static void close_conn(conn_t *c, int why);

static void ob_reserve(conn_t *c, uint32_t extra) {
    if (c->ob_off && c->ob_off == c->ob_len) c->ob_off = c->ob_len = 0;
    if (c->ob_len + extra <= c->ob_cap) return;
    if (c->ob_off) {
        memmove(c->ob, c->ob + c->ob_off, c->ob_len - c->ob_off);
        c->ob_len -= c->ob_off;
        c->ob_off = 0;
        if (c->ob_len + extra <= c->ob_cap) return;
    }
    uint32_t cap = c->ob_cap ? c->ob_cap : 256;
    while (cap < c->ob_len + extra) cap *= 2;
    c->ob = realloc(c->ob, cap);
    if (!c->ob) {
        perror("realloc");
        exit(1);
    }
    c->ob_cap = cap;
}

/* Queue one client-to-server websocket frame (masked, as RFC 6455 requires). */
static void queue_frame(conn_t *c, int opcode, const uint8_t *data, uint32_t n) {
    static const uint8_t key[4] = {0x5a, 0x17, 0xc3, 0x9e};
    if (c->state == S_CLOSED || c->fd < 0) return;
    if (c->ob_len - c->ob_off > (64u << 20)) { /* the server stopped reading us */
        g_overflow++;
        return;
    }
    ob_reserve(c, n + WS_MAX_HEADER);
    uint8_t *p = c->ob + c->ob_len;
    p += ws_write_header(p, opcode, n, key);
    ws_mask(p, data, n, key);
    p += n;
    c->ob_len = (uint32_t)(p - c->ob);
    mark_dirty((uint32_t)(c - conns));
}

static void queue_text(conn_t *c, const char *s, size_t n) { queue_frame(c, 1, (const uint8_t *)s, (uint32_t)n); }

static void flush_conn(conn_t *c) {
    while (c->fd >= 0 && c->ob_off < c->ob_len) {
        ssize_t w = write(c->fd, c->ob + c->ob_off, c->ob_len - c->ob_off);
        if (w > 0) {
            c->ob_off += (uint32_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && errno == EAGAIN) {
            return; /* EPOLLOUT (edge-triggered) calls us again */
        } else {
            close_conn(c, 4);
            return;
        }
    }
    if (c->ob_off == c->ob_len) c->ob_off = c->ob_len = 0;
}

static void flush_dirty(void) {
    for (uint32_t k = 0; k < ndirty; k++) {
        conn_t *c = &conns[dirty[k]];
        c->dirty = 0;
        flush_conn(c);
    }
    ndirty = 0;
}

/* ---------------------------------------------------------------- connection life */

static void leave_inflight(conn_t *c) {
    if (c->state >= S_CONNECTING && c->state <= S_WAIT_CONNECT) g_inflight--;
}

/* why: 1 eof, 2 websocket close, 3 engine.io close, 4 error, 5 failed handshake */
static void close_conn(conn_t *c, int why) {
    if (c->state == S_CLOSED) return;
    if (c->state == S_READY) {
        g_ready--;
        g_closed++;
        if (why == 1) g_closed_eof++;
        if (why == 2) g_closed_ws++;
        if (why == 3) g_closed_eio++;
    } else {
        leave_inflight(c);
        g_failed++;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    c->state = S_CLOSED;
    free(c->lo);
    c->lo = NULL;
    c->lo_len = 0;
    free(c->ob);
    c->ob = NULL;
    c->ob_off = c->ob_len = c->ob_cap = 0;
    free(c->ack_ts);
    c->ack_ts = NULL;
}

static void start_connect(uint32_t i, int32_t room) {
    conn_t *c = &conns[i];
    memset(c, 0, sizeof *c);
    c->fd = -1;
    c->room = room;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        note_error(errno, "socket: %s", strerror(errno));
        c->state = S_CLOSED;
        g_failed++;
        g_fail_connect++;
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    if (opt.src_addrs > 1) {
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        a.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(i % (uint32_t)opt.src_addrs));
        if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
            note_error(errno, "bind: %s", strerror(errno));
        }
    }
    a.sin_port = htons((uint16_t)opt.port);
    inet_pton(AF_INET, opt.host, &a.sin_addr);
    c->fd = fd;
    c->state = S_CONNECTING;
    g_inflight++;
    int r = connect(fd, (struct sockaddr *)&a, sizeof a);
    if (r < 0 && errno != EINPROGRESS) {
        note_error(errno, "connect: %s", strerror(errno));
        g_fail_connect++;
        close_conn(c, 5);
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.u64 = i};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        note_error(errno, "epoll_ctl: %s", strerror(errno));
        g_fail_connect++;
        close_conn(c, 5);
    }
}

static void finish_connect(conn_t *c) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
        note_error(err, "connect: %s", strerror(err));
        g_fail_connect++;
        close_conn(c, 5);
        return;
    }
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET %s?EIO=4&transport=websocket HTTP/1.1\r\n"
                     "Host: %s:%d\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     opt.path, opt.host, opt.port);
    ob_reserve(c, (uint32_t)n);
    memcpy(c->ob + c->ob_len, req, (size_t)n);
    c->ob_len += (uint32_t)n;
    c->state = S_HTTP;
    mark_dirty((uint32_t)(c - conns));
}

/* ---------------------------------------------------------------- incoming */

static uint64_t parse_u64(const uint8_t *p, const uint8_t *end, const uint8_t **stop) {
    uint64_t v = 0;
    while (p < end && *p >= '0' && *p <= '9') v = v * 10 + (uint64_t)(*p++ - '0');
    if (stop) *stop = p;
    return v;
}

/* A delivery: count it; look at one byte (the step's epoch letter right after "@@", at the
 * offset this client's frames had last time) to tell this step's frames from stale ones; parse
 * the timestamp only on sampled frames. */
static void on_delivery(conn_t *c, const uint8_t *d, size_t n) {
    g_deliveries++;
    if (sync_active) c->seen = 1;
    const uint8_t *m;
    if (c->at_off && (size_t)c->at_off + 2 < n && d[c->at_off] == '@' && d[c->at_off + 1] == '@') {
        m = d + c->at_off;
    } else {
        m = memmem(d, n, "@@", 2);
        if (!m || m + 2 >= d + n) return;
        c->at_off = (uint16_t)(m - d < 65535 ? m - d : 0);
    }
    if (m[2] != g_epoch) {
        g_stale++;
        return;
    }
    g_epoch_deliveries++;
    if ((g_deliveries & sample_mask) != 0 || sample_min_ts == UINT64_MAX) return;
    uint64_t ts = parse_u64(m + 3, d + n, NULL);
    if (ts < sample_min_ts) return;
    if (nsamples >= MAX_SAMPLES) {
        samples_dropped++;
        return;
    }
    samples[nsamples++] = mono_ns() - ts;
}

static void send_ack_message(conn_t *c);

static void on_ack(conn_t *c, const uint8_t *d, size_t n) {
    const uint8_t *stop;
    uint64_t id = parse_u64(d + 2, d + n, &stop);
    if (memmem(d, n, "\"ok\":true", 9) || memmem(d, n, "\"ok\": true", 10)) {
        g_acks_ok++;
    } else {
        g_acks_err++;
        note_error(0, "ack: %.*s", (int)(n > 200 ? 200 : n), (const char *)d);
    }
    if (c->ack_ts && c->outstanding) {
        c->outstanding--;
        uint64_t t0 = c->ack_ts[id % ACK_RING];
        if (t0 && nack_samples < MAX_SAMPLES) ack_samples[nack_samples++] = mono_ns() - t0;
        if (acks_active && !g_ack_interval) send_ack_message(c); /* closed loop */
    }
}

static void handle_frame(conn_t *c, int op, const uint8_t *d, size_t n) {
    g_frames++;
    if (op == WS_TEXT) {
        if (n >= 2 && d[0] == '4' && d[1] == '2') {
            if (n >= 12 && memcmp(d, "42[\"message\"", 12) == 0)
                on_delivery(c, d, n);
            else
                g_other_events++;
        } else if (n >= 2 && d[0] == '4' && d[1] == '3') {
            on_ack(c, d, n);
        } else if (n >= 1 && d[0] == '2') {
            g_pings++;
            c->pings++;
            queue_text(c, "3", 1);
        } else if (n >= 1 && d[0] == '0' && c->state == S_WAIT_OPEN) {
            c->state = S_WAIT_CONNECT;
            queue_text(c, "40", 2);
        } else if (n >= 2 && d[0] == '4' && d[1] == '0' && c->state == S_WAIT_CONNECT) {
            g_inflight--;
            c->state = S_READY;
            g_ready++;
            if (c->room >= 0) {
                char j[64];
                int k = snprintf(j, sizeof j, "42[\"channel_join\",\"r%d\"]", c->room);
                queue_text(c, j, (size_t)k);
                c->joined = 1;
            }
        } else if (n >= 2 && d[0] == '4' && (d[1] == '4' || d[1] == '1')) {
            if (c->state != S_READY) g_fail_eio++;
            note_error(0, "engine.io: %.*s", (int)(n > 200 ? 200 : n), (const char *)d);
            close_conn(c, 3);
        } else if (n >= 1 && d[0] == '1') {
            close_conn(c, 3);
        } else {
            g_other_frames++;
        }
    } else if (op == WS_CLOSE) {
        close_conn(c, 2);
    } else if (op == WS_PING) {
        queue_frame(c, WS_PONG, d, n <= 125 ? (uint32_t)n : 0);
    } else {
        g_other_frames++;
    }
}

/* Scan the websocket frames in p[0..len); returns how many bytes were consumed (the rest is an
 * incomplete frame, shorter than LEFTOVER_MAX, to be kept for the next read). */
static size_t parse_frames(conn_t *c, const uint8_t *p, size_t len) {
    size_t off = 0;
    if (c->skip) {
        size_t k = c->skip < len ? (size_t)c->skip : len;
        c->skip -= k;
        off = k;
    }
    if (c->state == S_HTTP) {
        const uint8_t *e = memmem(p + off, len - off, "\r\n\r\n", 4);
        if (!e) {
            if (len - off >= LEFTOVER_MAX) {
                g_fail_http++;
                note_error(0, "no HTTP response head");
                close_conn(c, 5);
                return len;
            }
            return off;
        }
        if (len - off < 12 || memcmp(p + off + 9, "101", 3) != 0) {
            g_fail_http++;
            const uint8_t *nl = memchr(p + off, '\r', len - off);
            note_error(0, "http: %.*s", (int)(nl - (p + off)), (const char *)(p + off));
            close_conn(c, 5);
            return len;
        }
        c->state = S_WAIT_OPEN;
        off = (size_t)(e + 4 - p);
    }
    while (off < len) {
        size_t avail = len - off;
        const uint8_t *f = p + off;
        ws_header_t wh;
        /* servers do not mask; a masked frame is tolerated (its payload left masked) */
        if (!ws_parse_header(f, avail, &wh)) break; /* an incomplete header: keep it */
        int op = wh.opcode;
        uint64_t plen = wh.payload_len;
        size_t hl = wh.header_len;
        if (avail - hl < plen) {
            if (avail >= LEFTOVER_MAX) { /* a large frame: look at its start now, skip the rest */
                handle_frame(c, op, f + hl, avail - hl);
                c->skip = plen - (avail - hl);
                return len;
            }
            break;
        }
        handle_frame(c, op, f + hl, (size_t)plen);
        off += hl + (size_t)plen;
        if (c->state == S_CLOSED) return len;
    }
    return off;
}

static void on_readable(conn_t *c) {
    for (;;) {
        if (c->state == S_CLOSED) return;
        uint32_t have = c->lo_len;
        ssize_t n = read(c->fd, rbuf + have, opt.read_size);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) return;
            close_conn(c, 4);
            return;
        }
        if (n == 0) {
            if (c->state != S_READY) {
                g_fail_http += c->state == S_HTTP;
                note_error(0, "server closed during handshake");
            }
            close_conn(c, 1);
            return;
        }
        g_bytes_in += (uint64_t)n;
        if (have) memcpy(rbuf, c->lo, have);
        c->lo_len = 0;
        size_t total = have + (size_t)n;
        size_t used = parse_frames(c, rbuf, total);
        if (c->state == S_CLOSED) return;
        size_t tail = total - used;
        if (tail) {
            if (!c->lo) c->lo = malloc(LEFTOVER_MAX);
            memcpy(c->lo, rbuf + used, tail);
            c->lo_len = (uint32_t)tail;
        }
        if ((size_t)n < opt.read_size) return; /* short read: drained; the next edge wakes us */
    }
}

/* ---------------------------------------------------------------- loop */

static void on_stdin(void);

static void poll_once(int timeout_ms) {
    static struct epoll_event evs[4096];
    int n = epoll_wait(ep, evs, 4096, timeout_ms);
    for (int k = 0; k < n; k++) {
        if (evs[k].data.u64 == STDIN_TAG) {
            on_stdin();
            continue;
        }
        conn_t *c = &conns[evs[k].data.u64];
        uint32_t e = evs[k].events;
        if (c->state == S_CLOSED || c->fd < 0) continue;
        if (c->state == S_CONNECTING) {
            if (e & (EPOLLOUT | EPOLLERR | EPOLLHUP))
                finish_connect(c);
            else
                continue;
            if (c->state == S_CLOSED) continue;
        } else if (e & EPOLLOUT) {
            flush_conn(c);
        }
        if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) on_readable(c);
    }
    flush_dirty();
}

/* Run the loop for `ms` milliseconds. */
static void run_for(uint64_t ns) {
    uint64_t end = mono_ns() + ns;
    for (uint64_t now = mono_ns(); now < end; now = mono_ns()) {
        uint64_t left_ms = (end - now) / 1000000 + 1;
        poll_once(left_ms > 50 ? 50 : (int)left_ms);
    }
}

/* Wait until no delivery arrived for quiet_ns (or max_ns passed); returns the seconds waited. */
/* bytes queued to servers that they have not read yet (an overloaded server stops reading) */
static uint64_t unsent_bytes(void) {
    uint64_t n = 0;
    for (uint32_t i = 0; i < nconns; i++)
        if (conns[i].fd >= 0) n += conns[i].ob_len - conns[i].ob_off;
    return n;
}

/* Wait until everything queued was written and then no delivery arrived for quiet_ns (or
 * max_ns passed); returns the seconds waited. */
static double wait_quiet(uint64_t quiet_ns, uint64_t max_ns) {
    uint64_t t0 = mono_ns(), last = t0, seen = g_deliveries;
    for (;;) {
        poll_once(20);
        uint64_t now = mono_ns();
        if (g_deliveries != seen || unsent_bytes()) {
            seen = g_deliveries;
            last = now;
        }
        if (now - last >= quiet_ns || now - t0 >= max_ns) return (double)(now - t0) / 1e9;
    }
}

/* ---------------------------------------------------------------- messages */

static uint64_t g_seq;
static char pad[1 << 16];

/* `42["message","@@<ts>:<seq>:xxxx"]`, the text padded to opt.msg_size. */
static void send_message(conn_t *c, uint64_t ts) {
    static char buf[(1 << 17)];
    int k = snprintf(buf, sizeof buf, "42[\"message\",\"@@%c%llu:%llu:", ts ? g_epoch : '0',
                     (unsigned long long)ts, (unsigned long long)g_seq++);
    int text = k - 14; /* text written so far */
    int padn = opt.msg_size - text;
    if (padn > 0) {
        memcpy(buf + k, pad, (size_t)padn);
        k += padn;
    }
    buf[k++] = '"';
    buf[k++] = ']';
    queue_text(c, buf, (size_t)k);
}

static void send_ack_message(conn_t *c) {
    static char buf[(1 << 17)];
    uint32_t id = c->ack_next++;
    uint64_t ts = mono_ns();
    int k = snprintf(buf, sizeof buf, "42%u[\"message\",{\"channel\":\"r%d\",\"message\":\"@@%c%llu:", id,
                     c->room, g_epoch, (unsigned long long)ts);
    int padn = opt.msg_size - 24;
    if (padn > 0) {
        memcpy(buf + k, pad, (size_t)padn);
        k += padn;
    }
    k += snprintf(buf + k, sizeof buf - (size_t)k, "\",\"client_id\":\"c%u-%u\"}]",
                  (unsigned)(c - conns), id);
    c->ack_ts[id % ACK_RING] = ts;
    c->outstanding++;
    queue_text(c, buf, (size_t)k);
}

/* ---------------------------------------------------------------- commands */

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_ms(uint64_t *v, uint32_t n, double q) {
    if (!n) return -1;
    uint32_t i = (uint32_t)(q * (n - 1) + 0.5);
    return (double)v[i] / 1e6;
}

static void print_lat(const char *prefix, uint64_t *v, uint32_t n) {
    qsort(v, n, sizeof *v, cmp_u64);
    printf(",\"%ssamples\":%u,\"%sp50_ms\":%.3f,\"%sp90_ms\":%.3f,\"%sp99_ms\":%.3f,"
           "\"%sp999_ms\":%.3f,\"%smax_ms\":%.3f",
           prefix, n, prefix, pct_ms(v, n, .5), prefix, pct_ms(v, n, .9), prefix,
           pct_ms(v, n, .99), prefix, pct_ms(v, n, .999), prefix, n ? (double)v[n - 1] / 1e6 : -1);
}

static void print_common(void) {
    printf(",\"ready\":%u,\"closed\":%u,\"failed\":%u,\"fail_connect\":%u,\"fail_http\":%u,"
           "\"fail_eio\":%u,\"closed_eof\":%u,\"closed_ws\":%u,\"closed_eio\":%u,\"overflow\":%u",
           g_ready, g_closed, g_failed, g_fail_connect, g_fail_http, g_fail_eio, g_closed_eof,
           g_closed_ws, g_closed_eio, g_overflow);
    if (g_first_error[0]) printf(",\"first_error\":\"%s\"", g_first_error);
    printf("}\n");
    fflush(stdout);
}

static void ensure_conns(uint32_t n) {
    if (n <= conns_cap) return;
    conns = realloc(conns, n * sizeof *conns);
    dirty = realloc(dirty, n * sizeof *dirty);
    if (!conns || !dirty) {
        perror("realloc");
        exit(1);
    }
    conns_cap = n;
}

static void cmd_connect(uint32_t target, int rooms, double timeout_s) {
    ensure_conns(target);
    uint64_t t0 = mono_ns(), deadline = t0 + (uint64_t)(timeout_s * 1e9);
    uint32_t start = nconns;
    while (mono_ns() < deadline) {
        while (nconns < target && g_inflight < (uint32_t)opt.max_inflight) {
            start_connect(nconns, rooms > 0 ? (int32_t)(nconns % (uint32_t)rooms) : -1);
            nconns++;
        }
        if (nconns >= target && g_inflight == 0) break;
        poll_once(5);
    }
    double secs = (double)(mono_ns() - t0) / 1e9;
    printf("{\"cmd\":\"connect\",\"clients\":%u,\"new\":%u,\"inflight\":%u,\"seconds\":%.3f",
           nconns, nconns - start, g_inflight, secs);
    print_common();
}

/* members of each room (ready clients) and each room's sender (its first ready client) */
static uint32_t *room_size, *room_sender;
static int32_t nrooms;

static void scan_rooms(void) {
    int32_t maxr = -1;
    for (uint32_t i = 0; i < nconns; i++)
        if (conns[i].state == S_READY && conns[i].room > maxr) maxr = conns[i].room;
    nrooms = maxr + 1;
    free(room_size);
    free(room_sender);
    room_size = calloc((size_t)nrooms + 1, sizeof *room_size);
    room_sender = malloc(((size_t)nrooms + 1) * sizeof *room_sender);
    for (int32_t r = 0; r < nrooms; r++) room_sender[r] = UINT32_MAX;
    for (uint32_t i = 0; i < nconns; i++) {
        conn_t *c = &conns[i];
        if (c->state != S_READY || c->room < 0) continue;
        room_size[c->room]++;
        if (room_sender[c->room] == UINT32_MAX) room_sender[c->room] = i;
    }
}

static void cmd_sync(double timeout_s) {
    uint64_t t0 = mono_ns(), deadline = t0 + (uint64_t)(timeout_s * 1e9), next = 0;
    for (uint32_t i = 0; i < nconns; i++) conns[i].seen = 0;
    sync_active = 1;
    uint32_t missing = 0, rounds = 0;
    for (;;) {
        uint64_t now = mono_ns();
        missing = 0;
        for (uint32_t i = 0; i < nconns; i++)
            if (conns[i].state == S_READY && conns[i].room >= 0 && !conns[i].seen) missing++;
        if (!missing || now >= deadline) break;
        if (now >= next) {
            scan_rooms();
            for (int32_t r = 0; r < nrooms; r++)
                if (room_sender[r] != UINT32_MAX) send_message(&conns[room_sender[r]], 0);
            next = now + 100000000ull;
            rounds++;
        }
        poll_once(5);
    }
    sync_active = 0;
    double quiet = wait_quiet(300000000ull, 10000000000ull);
    printf("{\"cmd\":\"sync\",\"ok\":%s,\"missing\":%u,\"rounds\":%u,\"seconds\":%.3f,"
           "\"quiet_s\":%.3f",
           missing ? "false" : "true", missing, rounds, (double)(mono_ns() - t0) / 1e9, quiet);
    print_common();
}

static void cmd_step(double rate, double warmup_s, double measure_s, int all_senders) {
    scan_rooms();
    uint32_t *senders = malloc((nconns + 1) * sizeof *senders), nsend = 0;
    uint64_t members = 0;
    if (all_senders) {
        for (uint32_t i = 0; i < nconns; i++)
            if (conns[i].state == S_READY && conns[i].room >= 0) senders[nsend++] = i;
    } else {
        for (int32_t r = 0; r < nrooms; r++)
            if (room_sender[r] != UINT32_MAX) senders[nsend++] = room_sender[r];
    }
    for (uint32_t k = 0; k < nsend; k++) members += room_size[conns[senders[k]].room];
    if (!nsend || !members) {
        printf("{\"cmd\":\"step\",\"error\":\"no senders\"");
        print_common();
        free(senders);
        return;
    }
    double avg_room = (double)members / nsend;
    double msg_rate = rate / avg_room;
    /* sample about 100k frames per second at most */
    uint64_t every = 1;
    while ((double)every * 100000.0 < rate) every <<= 1;
    sample_mask = every - 1;
    nsamples = samples_dropped = 0;

    uint32_t closed0 = g_closed;
    uint64_t ovf0 = g_overflow;
    /* a new epoch letter: frames of earlier steps still arriving are counted as stale */
    g_epoch = (uint8_t)(g_epoch >= 'A' && g_epoch < 'Z' ? g_epoch + 1 : 'A');
    uint64_t stale0 = g_stale;
    uint64_t t0 = mono_ns();
    uint64_t t_meas = t0 + (uint64_t)(warmup_s * 1e9);
    uint64_t t_end = t_meas + (uint64_t)(measure_s * 1e9);
    uint64_t d0 = g_epoch_deliveries, d_meas = 0, expected = 0, sent = 0, sent_meas = 0, k = 0;
    double cpu_s0 = 0, cpu_l0 = 0, cpu_m0 = 0;
    int measuring = 0;
    uint64_t now = t0;
    while (now < t_end) {
        if (!measuring && now >= t_meas) {
            measuring = 1;
            d_meas = g_epoch_deliveries;
            sent_meas = sent;
            sample_min_ts = t_meas;
            cpu_s0 = server_cpu_s();
            cpu_l0 = self_cpu_s();
            cpu_m0 = machine_busy_s();
        }
        uint64_t due = (uint64_t)((double)(now - t0) / 1e9 * msg_rate);
        for (; sent < due; sent++, k++) {
            conn_t *c = &conns[senders[k % nsend]];
            if (c->state != S_READY) continue;
            expected += room_size[c->room];
            send_message(c, now);
        }
        flush_dirty();
        poll_once(1);
        now = mono_ns();
    }
    uint64_t d_end = g_epoch_deliveries;
    double cpu_s1 = server_cpu_s(), cpu_l1 = self_cpu_s(), cpu_m1 = machine_busy_s();
    uint64_t sent_in_window = sent - sent_meas;
    /* drain: until everything expected arrived, nothing arrived for 500 ms, or 5 s passed */
    uint64_t last = now, seen = g_epoch_deliveries;
    while (g_epoch_deliveries - d0 < expected) {
        poll_once(10);
        uint64_t t = mono_ns();
        if (g_epoch_deliveries != seen) {
            seen = g_epoch_deliveries;
            last = t;
        }
        if (t - last > 500000000ull || t - t_end > 5000000000ull) break;
    }
    double drain_s = (double)(mono_ns() - t_end) / 1e9;
    sample_min_ts = UINT64_MAX;
    uint64_t received = g_epoch_deliveries - d0;
    double mdur = (double)(t_end - t_meas) / 1e9;
    printf("{\"cmd\":\"step\",\"offered\":%.1f,\"msg_rate\":%.2f,\"room_size\":%.1f,"
           "\"senders\":%u,\"warmup_s\":%.2f,\"measure_s\":%.3f,\"sent_msgs\":%llu,"
           "\"window_msgs\":%llu,\"expected\":%llu,\"received\":%llu,\"delivered_ratio\":%.5f,"
           "\"deliveries_per_s\":%.1f,\"drain_s\":%.3f,\"server_cpu_s\":%.3f,"
           "\"server_cpu_util\":%.3f,\"loadgen_cpu_util\":%.3f,\"step_closed\":%u,"
           "\"step_overflow\":%llu,\"sample_every\":%llu,\"samples_dropped\":%u,"
           "\"other_cpu_util\":%.3f,\"stale\":%llu",
           rate, msg_rate, avg_room, nsend, warmup_s, mdur, (unsigned long long)sent,
           (unsigned long long)sent_in_window, (unsigned long long)expected,
           (unsigned long long)received, expected ? (double)received / (double)expected : 0.0,
           (double)(d_end - d_meas) / mdur, drain_s, cpu_s1 >= 0 ? cpu_s1 - cpu_s0 : -1.0,
           cpu_s1 >= 0 ? (cpu_s1 - cpu_s0) / mdur : -1.0, (cpu_l1 - cpu_l0) / mdur,
           g_closed - closed0, (unsigned long long)(g_overflow - ovf0),
           (unsigned long long)every, samples_dropped,
           ((cpu_m1 - cpu_m0) - (cpu_s1 - cpu_s0) - (cpu_l1 - cpu_l0)) / mdur,
           (unsigned long long)(g_stale - stale0));
    print_lat("", samples, nsamples);
    print_common();
    free(senders);
}

/* Exactly n messages (round robin over the rooms' senders), then wait until every expected
 * delivery arrived or timeout_s passed: exact counts, for tests. */
static void cmd_burst(uint32_t n, double timeout_s) {
    scan_rooms();
    g_epoch = (uint8_t)(g_epoch >= 'A' && g_epoch < 'Z' ? g_epoch + 1 : 'A');
    uint64_t d0 = g_epoch_deliveries, stale0 = g_stale, f0 = g_frames, expected = 0;
    uint32_t sent = 0;
    uint64_t t0 = mono_ns();
    for (uint32_t k = 0; nrooms > 0 && k < n; k++) {
        int32_t r = (int32_t)(k % (uint32_t)nrooms);
        if (room_sender[r] == UINT32_MAX) continue;
        expected += room_size[r];
        send_message(&conns[room_sender[r]], t0);
        sent++;
    }
    flush_dirty();
    uint64_t deadline = t0 + (uint64_t)(timeout_s * 1e9);
    while (g_epoch_deliveries - d0 < expected && mono_ns() < deadline) poll_once(10);
    printf("{\"cmd\":\"burst\",\"sent\":%u,\"expected\":%llu,\"received\":%llu,"
           "\"stale\":%llu,\"frames\":%llu,\"seconds\":%.3f",
           sent, (unsigned long long)expected, (unsigned long long)(g_epoch_deliveries - d0),
           (unsigned long long)(g_stale - stale0), (unsigned long long)(g_frames - f0),
           (double)(mono_ns() - t0) / 1e9);
    print_common();
}

static void cmd_acks(double seconds, uint32_t window, double per_client_rate) {
    if (window > ACK_RING) window = ACK_RING;
    if (window < 1) window = 1;
    nack_samples = 0;
    uint64_t ok0 = g_acks_ok, err0 = g_acks_err, d0 = g_deliveries;
    uint32_t clients = 0;
    /* paced: each client sends at most per_client_rate messages/s (servers limit per client) */
    g_ack_interval = per_client_rate > 0 ? (uint64_t)(1e9 / per_client_rate) : 0;
    acks_active = 1;
    double cpu_s0 = server_cpu_s();
    uint64_t t0 = mono_ns(), t_end = t0 + (uint64_t)(seconds * 1e9);
    uint32_t *list = malloc((nconns + 1) * sizeof *list);
    for (uint32_t i = 0; i < nconns; i++) {
        conn_t *c = &conns[i];
        if (c->state != S_READY || c->room < 0) continue;
        if (!c->ack_ts) c->ack_ts = calloc(ACK_RING, sizeof *c->ack_ts);
        list[clients++] = i;
    }
    for (uint32_t k = 0; k < clients; k++) /* spread the first sends over one interval */
        conns[list[k]].next_ns = t0 + (g_ack_interval ? g_ack_interval * k / clients : 0);
    for (uint64_t now = t0; now < t_end; now = mono_ns()) {
        for (uint32_t k = 0; k < clients; k++) {
            conn_t *c = &conns[list[k]];
            if (c->state != S_READY) continue;
            while (c->outstanding < window && c->next_ns <= now) {
                send_ack_message(c);
                c->next_ns = c->next_ns + g_ack_interval < now ? now : c->next_ns + g_ack_interval;
                if (!g_ack_interval) break;
            }
        }
        flush_dirty();
        poll_once(g_ack_interval ? 2 : 20);
    }
    free(list);
    acks_active = 0;
    uint64_t t1 = mono_ns();
    double cpu_s1 = server_cpu_s();
    uint64_t ok = g_acks_ok - ok0, err = g_acks_err - err0;
    /* let what is in flight come back (not counted in the rate) */
    uint64_t dl = mono_ns() + 5000000000ull;
    for (;;) {
        uint32_t out = 0;
        for (uint32_t i = 0; i < nconns; i++)
            if (conns[i].state == S_READY) out += conns[i].outstanding;
        if (!out || mono_ns() > dl) break;
        poll_once(10);
    }
    double dur = (double)(t1 - t0) / 1e9;
    printf("{\"cmd\":\"acks\",\"clients\":%u,\"window\":%u,\"seconds\":%.3f,\"acked\":%llu,"
           "\"errors\":%llu,\"acked_per_s\":%.1f,\"offered_per_s\":%.1f,\"deliveries\":%llu,"
           "\"server_cpu_util\":%.3f",
           clients, window, dur, (unsigned long long)ok, (unsigned long long)err,
           (double)ok / dur, per_client_rate > 0 ? per_client_rate * clients : -1.0,
           (unsigned long long)(g_deliveries - d0), cpu_s1 >= 0 ? (cpu_s1 - cpu_s0) / dur : -1.0);
    print_lat("ack_", ack_samples, nack_samples);
    print_common();
}

static void cmd_hold(double seconds) {
    uint32_t closed0 = g_closed;
    for (uint32_t i = 0; i < nconns; i++) conns[i].ping_mark = conns[i].pings;
    uint64_t p0 = g_pings;
    run_for((uint64_t)(seconds * 1e9));
    uint32_t pinged = 0;
    for (uint32_t i = 0; i < nconns; i++)
        if (conns[i].state == S_READY && conns[i].pings != conns[i].ping_mark) pinged++;
    printf("{\"cmd\":\"hold\",\"seconds\":%.1f,\"alive\":%u,\"pinged\":%u,\"pings\":%llu,"
           "\"hold_closed\":%u",
           seconds, g_ready, pinged, (unsigned long long)(g_pings - p0), g_closed - closed0);
    print_common();
}

static void cmd_stats(void) {
    printf("{\"cmd\":\"stats\",\"clients\":%u,\"deliveries\":%llu,\"frames\":%llu,"
           "\"bytes_in\":%llu,\"other_events\":%llu,\"other_frames\":%llu,\"pings\":%llu,"
           "\"acks_ok\":%llu,\"acks_err\":%llu,\"stale\":%llu",
           nconns, (unsigned long long)g_deliveries, (unsigned long long)g_frames,
           (unsigned long long)g_bytes_in, (unsigned long long)g_other_events,
           (unsigned long long)g_other_frames, (unsigned long long)g_pings,
           (unsigned long long)g_acks_ok, (unsigned long long)g_acks_err,
           (unsigned long long)g_stale);
    print_common();
}

static char pending_cmd[4096];
static int have_cmd;

static void on_stdin(void) {
    for (;;) {
        ssize_t n = read(0, line + line_len, sizeof line - 1 - line_len);
        if (n == 0) {
            stdin_eof = 1;
            if (!stdin_direct) epoll_ctl(ep, EPOLL_CTL_DEL, 0, NULL);
            return;
        }
        if (n < 0) return;
        line_len += (size_t)n;
        if (line_len >= sizeof line - 1) line_len = 0; /* absurd line: drop it */
        char *nl = memchr(line, '\n', line_len);
        if (nl && !have_cmd) {
            size_t k = (size_t)(nl - line);
            memcpy(pending_cmd, line, k);
            pending_cmd[k] = 0;
            memmove(line, nl + 1, line_len - k - 1);
            line_len -= k + 1;
            have_cmd = 1;
        }
        return;
    }
}

static int next_command(char *out, size_t cap) {
    for (;;) {
        if (!have_cmd) {
            char *nl = memchr(line, '\n', line_len);
            if (nl) {
                size_t k = (size_t)(nl - line);
                memcpy(pending_cmd, line, k);
                pending_cmd[k] = 0;
                memmove(line, nl + 1, line_len - k - 1);
                line_len -= k + 1;
                have_cmd = 1;
            }
        }
        if (have_cmd) {
            snprintf(out, cap, "%s", pending_cmd);
            have_cmd = 0;
            return 1;
        }
        if (stdin_eof) return 0;
        if (stdin_direct) on_stdin();
        else poll_once(50);
    }
}

static void raise_nofile(void) {
    struct rlimit rl = {1 << 20, 1 << 20};
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
        getrlimit(RLIMIT_NOFILE, &rl);
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "missing value for %s\n", a);
            return 2;
        }
        if (!strcmp(a, "--port")) opt.port = atoi(v);
        else if (!strcmp(a, "--host")) opt.host = v;
        else if (!strcmp(a, "--src-addrs")) opt.src_addrs = atoi(v);
        else if (!strcmp(a, "--pid")) opt.pid = atoi(v);
        else if (!strcmp(a, "--size")) opt.msg_size = atoi(v);
        else if (!strcmp(a, "--read-size")) opt.read_size = (size_t)atol(v);
        else if (!strcmp(a, "--inflight")) opt.max_inflight = atoi(v);
        else if (!strcmp(a, "--path")) opt.path = v;
        else {
            fprintf(stderr, "unknown option %s\n", a);
            return 2;
        }
        i++;
    }
    if (!opt.port) {
        fprintf(stderr, "usage: loadgen --port P [options] < commands\n");
        return 2;
    }
    if (opt.msg_size < 0 || opt.msg_size > 65500) opt.msg_size = 48;
    if (opt.read_size < 16) opt.read_size = 16;
    if (opt.src_addrs < 1) opt.src_addrs = 1;
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    memset(pad, 'x', sizeof pad);
    rbuf = malloc(opt.read_size + LEFTOVER_MAX);
    samples = malloc(MAX_SAMPLES * sizeof *samples);
    ack_samples = malloc(MAX_SAMPLES * sizeof *ack_samples);
    ensure_conns(1024);
    ep = epoll_create1(EPOLL_CLOEXEC);
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = STDIN_TAG};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev) < 0) stdin_direct = 1; /* a regular file */
    printf("{\"cmd\":\"hello\",\"port\":%d}\n", opt.port);
    fflush(stdout);
    char cmd[4096];
    while (next_command(cmd, sizeof cmd)) {
        char w[32] = "", s[32] = "";
        double a1 = 0, a2 = 0, a3 = 0;
        int n = sscanf(cmd, "%31s %lf %lf %lf %31s", w, &a1, &a2, &a3, s);
        if (n < 1) continue;
        if (!strcmp(w, "connect")) cmd_connect((uint32_t)a1, n >= 3 ? (int)a2 : 0, n >= 4 ? a3 : 300);
        else if (!strcmp(w, "sync")) cmd_sync(n >= 2 ? a1 : 10);
        else if (!strcmp(w, "step")) cmd_step(a1, a2, a3, !strcmp(s, "all"));
        else if (!strcmp(w, "burst")) cmd_burst((uint32_t)a1, n >= 3 ? a2 : 30);
        else if (!strcmp(w, "acks")) cmd_acks(a1, (uint32_t)(n >= 3 ? a2 : 1), n >= 4 ? a3 : 0);
        else if (!strcmp(w, "hold")) cmd_hold(a1);
        else if (!strcmp(w, "quiet")) {
            double q = wait_quiet(300000000ull, (uint64_t)((n >= 2 ? a1 : 10) * 1e9));
            printf("{\"cmd\":\"quiet\",\"seconds\":%.3f", q);
            print_common();
        } else if (!strcmp(w, "stats")) cmd_stats();
        else if (!strcmp(w, "quit")) break;
        else {
            printf("{\"cmd\":\"%s\",\"error\":\"unknown command\"}\n", w[0] == '"' ? "?" : w);
            fflush(stdout);
        }
    }
    return 0;
}
