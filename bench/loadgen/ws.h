/*
 * ws.h: the RFC 6455 websocket framing shared by loadgen.c (a client: masks what it sends) and
 * blast.c (a server: unmasks what it receives).  Header-only, every function static inline, so
 * each program still builds from its one .c file: gcc -O2 -Wall -o loadgen loadgen.c
 *
 * Only what the two programs need: single-frame messages (FIN always set on what is written),
 * no extensions, no UTF-8 validation.  Both programs are benchmark tools, not conforming peers.
 */
#ifndef SALAS_LOADGEN_WS_H
#define SALAS_LOADGEN_WS_H

#include <stddef.h>
#include <stdint.h>

enum { WS_TEXT = 0x1, WS_CLOSE = 0x8, WS_PING = 0x9, WS_PONG = 0xA };

/* The longest frame header: 2 bytes, an 8-byte length, a 4-byte masking key. */
#define WS_MAX_HEADER 14

/* The head of one frame, as read by ws_parse_header. */
typedef struct {
    int opcode;
    int masked;           /* the mask bit; the key is the header's last 4 bytes */
    size_t header_len;    /* 2 to 14 bytes, the masking key included */
    uint64_t payload_len;
} ws_header_t;

/* Read the header of the frame starting at f[0..avail).  Returns 1 with *h filled, or 0 when
 * the header itself is not complete yet (the payload may still be incomplete when 1). */
static inline int ws_parse_header(const uint8_t *f, size_t avail, ws_header_t *h) {
    if (avail < 2) return 0;
    uint64_t plen = f[1] & 0x7f;
    size_t hl = 2;
    if (plen == 126) {
        if (avail < 4) return 0;
        plen = ((uint64_t)f[2] << 8) | f[3];
        hl = 4;
    } else if (plen == 127) {
        if (avail < 10) return 0;
        plen = 0;
        for (int k = 2; k < 10; k++) plen = (plen << 8) | f[k];
        hl = 10;
    }
    h->opcode = f[0] & 0x0f;
    h->masked = (f[1] & 0x80) != 0;
    if (h->masked) hl += 4;
    if (avail < hl) return 0;
    h->header_len = hl;
    h->payload_len = plen;
    return 1;
}

/* Write the header of a final frame of `opcode` carrying `n` payload bytes into h (room for
 * WS_MAX_HEADER bytes); with a `key` the mask bit is set and the key follows.  Returns the
 * header's length. */
static inline size_t ws_write_header(uint8_t *h, int opcode, uint64_t n, const uint8_t *key) {
    uint8_t mask = key ? 0x80 : 0;
    size_t hl;
    h[0] = (uint8_t)(0x80 | opcode);
    if (n < 126) {
        h[1] = (uint8_t)(mask | n);
        hl = 2;
    } else if (n < 65536) {
        h[1] = mask | 126;
        h[2] = (uint8_t)(n >> 8);
        h[3] = (uint8_t)n;
        hl = 4;
    } else {
        h[1] = mask | 127;
        for (int k = 0; k < 8; k++) h[2 + k] = (uint8_t)(n >> (56 - 8 * k));
        hl = 10;
    }
    if (key) {
        for (int k = 0; k < 4; k++) h[hl + k] = key[k];
        hl += 4;
    }
    return hl;
}

/* dst[k] = src[k] ^ key[k % 4] for n bytes: masks and unmasks alike (dst may be src). */
static inline void ws_mask(uint8_t *dst, const uint8_t *src, uint64_t n, const uint8_t *key) {
    for (uint64_t k = 0; k < n; k++) dst[k] = src[k] ^ key[k & 3];
}

#endif
