/*
 * blast: the smallest, fastest relay that speaks just enough Engine.IO v4 / Socket.IO v5 over
 * websockets for loadgen.  It exists to measure loadgen's own ceiling: it does the tutorial's
 * relay (`channel_join` joins a room, `message` goes to the room as {channel, message}) by
 * building each outgoing frame once, appending the same bytes to every member's output
 * buffer and writing each connection's buffer once per loop iteration.  Far cheaper per
 * delivery than any real server, so a sweep against it finds where loadgen itself stops.
 *
 * NOT a conforming server: no Sec-WebSocket-Accept, no UTF-8 checks, no polling transport
 * (a polling GET gets the open packet and a close, enough for a readiness probe).
 * Acknowledged events (`42<id>[...]`) are answered `43<id>[{"ok":true,"id":<n>}]` and, if
 * they are a `message` with a {channel, message} object, relayed like the plain ones.
 *
 * Options: --port P (required), --ping-ms MS (send an Engine.IO ping to every client each MS;
 * 0 = never, default 25000), --chunk N (write at most N bytes per write call, to exercise
 * frames split across reads; default unlimited).
 *
 * Build: gcc -O2 -Wall -o blast blast.c  (the websocket framing is in ws.h, beside it)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
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

#define MAX_ROOMS 4096
#define OUT_LIMIT (32u << 20)

typedef struct {
    int fd;
    int ws;
    int dirty;
    int room;
    uint8_t *in;
    uint32_t in_len, in_cap;
    uint8_t *out;
    uint32_t out_off, out_len, out_cap;
} conn_t;

typedef struct {
    char name[64];
    uint32_t *members;
    uint32_t n, cap;
} room_t;

static conn_t **conns; /* by fd */
static int conns_cap;
static int *dirty, ndirty;
static room_t rooms[MAX_ROOMS];
static int nrooms;
static int ep;
static long chunk;
static uint64_t sid_seq, msg_id;
static uint8_t *rbuf;
#define RBUF (1 << 20)

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void mark_dirty(conn_t *c) {
    if (!c->dirty) {
        c->dirty = 1;
        dirty[ndirty++] = c->fd;
    }
}

static void drop(conn_t *c) {
    if (c->room >= 0) {
        room_t *r = &rooms[c->room];
        for (uint32_t k = 0; k < r->n; k++)
            if (r->members[k] == (uint32_t)c->fd) {
                r->members[k] = r->members[--r->n];
                break;
            }
    }
    conns[c->fd] = NULL;
    close(c->fd);
    c->fd = -1; /* stays in the dirty list until the flush skips it */
    free(c->in);
    free(c->out);
    c->in = c->out = NULL;
    c->out_len = c->out_off = c->out_cap = c->in_len = c->in_cap = 0;
    /* the struct itself is not freed: callers may still look at c->fd (a few bytes leak per
     * closed connection, which a benchmark helper can afford) */
}

static int out_append(conn_t *c, const void *p, uint32_t n) {
    if (c->out_off && c->out_off == c->out_len) c->out_off = c->out_len = 0;
    if (c->out_len - c->out_off + n > OUT_LIMIT) return -1; /* slow consumer */
    if (c->out_len + n > c->out_cap) {
        if (c->out_off) {
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off;
            c->out_off = 0;
        }
        uint32_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + n) cap *= 2;
        if (cap != c->out_cap) {
            c->out = realloc(c->out, cap);
            c->out_cap = cap;
        }
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
    mark_dirty(c);
    return 0;
}

static void send_text(conn_t *c, const char *s, size_t n) {
    uint8_t h[WS_MAX_HEADER];
    uint32_t hl = (uint32_t)ws_write_header(h, WS_TEXT, n, NULL);
    out_append(c, h, hl);
    out_append(c, s, (uint32_t)n);
}

static int room_index(const char *name, size_t n) {
    if (n >= sizeof rooms[0].name) n = sizeof rooms[0].name - 1;
    for (int r = 0; r < nrooms; r++)
        if (strlen(rooms[r].name) == n && !memcmp(rooms[r].name, name, n)) return r;
    if (nrooms == MAX_ROOMS) return -1;
    memcpy(rooms[nrooms].name, name, n);
    rooms[nrooms].name[n] = 0;
    return nrooms++;
}

static void join(conn_t *c, int r) {
    if (c->room == r) return;
    if (c->room >= 0) {
        room_t *o = &rooms[c->room];
        for (uint32_t k = 0; k < o->n; k++)
            if (o->members[k] == (uint32_t)c->fd) {
                o->members[k] = o->members[--o->n];
                break;
            }
    }
    room_t *rm = &rooms[r];
    if (rm->n == rm->cap) {
        rm->cap = rm->cap ? rm->cap * 2 : 16;
        rm->members = realloc(rm->members, rm->cap * sizeof *rm->members);
    }
    rm->members[rm->n++] = (uint32_t)c->fd;
    c->room = r;
}

/* Broadcast `42["message",{"channel":"<room>","message":<text as JSON string>}]`. */
static void relay(int r, const uint8_t *text, size_t tn) {
    static uint8_t frame[(1 << 20) + 256];
    if (tn > (1 << 20)) return;
    room_t *rm = &rooms[r];
    char head[160];
    int hn = snprintf(head, sizeof head, "42[\"message\",{\"channel\":\"%s\",\"message\":", rm->name);
    uint64_t n = (uint64_t)hn + tn + 2;
    uint32_t fl = (uint32_t)ws_write_header(frame, WS_TEXT, n, NULL);
    memcpy(frame + fl, head, (size_t)hn);
    memcpy(frame + fl + hn, text, tn);
    memcpy(frame + fl + hn + tn, "}]", 2);
    fl += (uint32_t)n;
    for (uint32_t k = 0; k < rm->n; k++) {
        conn_t *m = conns[rm->members[k]];
        if (m && out_append(m, frame, fl) < 0) {
            drop(m);
            k--; /* drop() moved the last member into slot k */
        }
    }
}

/* the JSON string value that starts at p (a '"'), returned with its quotes */
static size_t json_string(const uint8_t *p, const uint8_t *end) {
    if (p >= end || *p != '"') return 0;
    const uint8_t *q = p + 1;
    while (q < end && *q != '"') q += (*q == '\\') ? 2 : 1;
    return q < end ? (size_t)(q + 1 - p) : 0;
}

static void on_text(conn_t *c, uint8_t *d, size_t n) {
    if (n == 2 && d[0] == '4' && d[1] == '0') {
        char s[64];
        int k = snprintf(s, sizeof s, "40{\"sid\":\"s%llu\"}", (unsigned long long)++sid_seq);
        send_text(c, s, (size_t)k);
        return;
    }
    if (n < 3 || d[0] != '4' || d[1] != '2') return; /* pongs and the rest */
    uint8_t *p = d + 2, *end = d + n;
    int has_ack = 0;
    uint64_t ack = 0;
    while (p < end && *p >= '0' && *p <= '9') {
        has_ack = 1;
        ack = ack * 10 + (uint64_t)(*p++ - '0');
    }
    if (has_ack) {
        char s[96];
        int k = snprintf(s, sizeof s, "43%llu[{\"ok\":true,\"id\":%llu}]", (unsigned long long)ack,
                         (unsigned long long)++msg_id);
        send_text(c, s, (size_t)k);
    }
    if ((size_t)(end - p) > 17 && !memcmp(p, "[\"channel_join\",", 16)) {
        size_t sl = json_string(p + 16, end);
        if (sl >= 2) {
            int r = room_index((const char *)p + 17, sl - 2);
            if (r >= 0) join(c, r);
        }
    } else if ((size_t)(end - p) > 12 && !memcmp(p, "[\"message\",", 11) && c->room >= 0) {
        uint8_t *v = p + 11;
        if (*v == '"') {
            size_t sl = json_string(v, end);
            if (sl) relay(c->room, v, sl);
        } else if (*v == '{') {
            uint8_t *m = memmem(v, (size_t)(end - v), "\"message\":", 10);
            if (m) {
                size_t sl = json_string(m + 10, end);
                if (sl) relay(c->room, m + 10, sl);
            }
        }
    }
}

static void on_ws_bytes(conn_t *c) {
    size_t off = 0;
    while (c->fd >= 0) {
        size_t avail = c->in_len - off;
        uint8_t *f = c->in + off;
        ws_header_t wh;
        if (!ws_parse_header(f, avail, &wh) || avail - wh.header_len < wh.payload_len) break;
        uint8_t *d = f + wh.header_len;
        uint64_t plen = wh.payload_len;
        if (wh.masked) ws_mask(d, d, plen, d - 4);
        if (wh.opcode == WS_TEXT) on_text(c, d, (size_t)plen);
        else if (wh.opcode == WS_CLOSE) {
            drop(c);
            return;
        } else if (wh.opcode == WS_PING) {
            uint8_t h[WS_MAX_HEADER];
            out_append(c, h, (uint32_t)ws_write_header(h, WS_PONG, 0, NULL));
        }
        off += wh.header_len + (size_t)plen;
    }
    if (c->fd < 0) return;
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= (uint32_t)off;
}

static void on_http(conn_t *c) {
    uint8_t *e = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (!e) {
        if (c->in_len > 8192) drop(c);
        return;
    }
    size_t head = (size_t)(e + 4 - c->in);
    char open_pkt[160];
    int on = snprintf(open_pkt, sizeof open_pkt,
                      "0{\"sid\":\"b%llu\",\"upgrades\":[],\"pingInterval\":25000,"
                      "\"pingTimeout\":20000,\"maxPayload\":1000000}",
                      (unsigned long long)++sid_seq);
    if (!memmem(c->in, head, "websocket", 9) || memmem(c->in, head, "transport=polling", 17)) {
        char r[512];
        int k = snprintf(r, sizeof r,
                         "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=UTF-8\r\n"
                         "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                         on, open_pkt);
        if (write(c->fd, r, (size_t)k) < 0) { /* best effort */
        }
        drop(c);
        return;
    }
    static const char resp[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    out_append(c, resp, sizeof resp - 1);
    send_text(c, open_pkt, (size_t)on);
    c->ws = 1;
    memmove(c->in, c->in + head, c->in_len - head);
    c->in_len -= (uint32_t)head;
    on_ws_bytes(c);
}

static void on_readable(conn_t *c) {
    for (;;) {
        ssize_t n = read(c->fd, rbuf, RBUF);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;
        if (n <= 0) {
            drop(c);
            return;
        }
        if (c->in_len + (size_t)n > c->in_cap) {
            uint32_t cap = c->in_cap ? c->in_cap : 4096;
            while (cap < c->in_len + (size_t)n) cap *= 2;
            c->in = realloc(c->in, cap);
            c->in_cap = cap;
        }
        memcpy(c->in + c->in_len, rbuf, (size_t)n);
        c->in_len += (uint32_t)n;
        if (c->ws)
            on_ws_bytes(c);
        else
            on_http(c);
        if (c->fd < 0 || (size_t)n < RBUF) return;
    }
}

static void flush(conn_t *c) {
    while (c->fd >= 0 && c->out_off < c->out_len) {
        size_t n = c->out_len - c->out_off;
        if (chunk > 0 && n > (size_t)chunk) n = (size_t)chunk;
        ssize_t w = write(c->fd, c->out + c->out_off, n);
        if (w > 0) {
            c->out_off += (uint32_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && errno == EAGAIN) {
            return;
        } else {
            drop(c);
            return;
        }
    }
    if (c->out_off == c->out_len) c->out_off = c->out_len = 0;
}

int main(int argc, char **argv) {
    int port = 0;
    long ping_ms = 25000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--ping-ms")) ping_ms = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--chunk")) chunk = atol(argv[i + 1]);
    }
    if (!port) {
        fprintf(stderr, "usage: blast --port P [--ping-ms MS] [--chunk N]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl = {1 << 20, 1 << 20};
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
        getrlimit(RLIMIT_NOFILE, &rl);
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    conns_cap = (int)rl.rlim_cur;
    conns = calloc((size_t)conns_cap, sizeof *conns);
    dirty = calloc((size_t)conns_cap, sizeof *dirty);
    rbuf = malloc(RBUF);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 4096) < 0) {
        perror("bind/listen");
        return 1;
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.fd = ls};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &lev);
    fprintf(stderr, "blast listening on 127.0.0.1:%d\n", port);
    static struct epoll_event evs[4096];
    uint64_t next_ping = ping_ms > 0 ? mono_ms() + (uint64_t)ping_ms : UINT64_MAX;
    for (;;) {
        int n = epoll_wait(ep, evs, 4096, 100);
        for (int k = 0; k < n; k++) {
            int fd = evs[k].data.fd;
            if (fd == ls) {
                for (;;) {
                    int cfd = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (cfd < 0) break;
                    if (cfd >= conns_cap) {
                        close(cfd);
                        continue;
                    }
                    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conn_t *c = calloc(1, sizeof *c);
                    c->fd = cfd;
                    c->room = -1;
                    conns[cfd] = c;
                    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                                             .data.fd = cfd};
                    epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &ev);
                }
                continue;
            }
            conn_t *c = conns[fd];
            if (!c) continue;
            if (evs[k].events & EPOLLOUT) flush(c);
            if (c->fd >= 0 && (evs[k].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
                on_readable(c);
        }
        if (mono_ms() >= next_ping) {
            for (int fd = 0; fd < conns_cap; fd++)
                if (conns[fd] && conns[fd]->ws) send_text(conns[fd], "2", 1);
            next_ping = mono_ms() + (uint64_t)ping_ms;
        }
        int nd = ndirty;
        ndirty = 0;
        for (int k = 0; k < nd; k++) {
            int fd = dirty[k];
            conn_t *c = conns[fd];
            if (!c) continue;
            c->dirty = 0;
            flush(c);
        }
    }
}
