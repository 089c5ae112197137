/**
 * cim_int.h: libcim internals shared by its two drivers (private; not installed).
 *
 * cim.c holds the protocol engine (handshake, sealing, req_id handling, push decoding) and
 * the blocking driver; cim_async.c holds the libuv driver. Both drive the same struct cimc
 * below: the engine part is common, the driver part is a union.
 *
 * Threading: as for cim.h. Nothing here is shared between connections except the
 * process-wide, write-once chan_global_init result behind cimc__global_init().
 */
#ifndef CIM_CLIENT_CIM_INT_H
#define CIM_CLIENT_CIM_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/cim.h"
#include "core/chan.h"
#include "core/frame.h"

#define CIMC_HELLO_MAX          128 /* an encoded ClientHello is 72 bytes */
#define CIMC_DEFAULT_TIMEOUT_MS 10000
#define CIMC_SEND_FRAME_MAX     (16u << 20) /* cimc_send_frame: a sanity cap, not the protocol's */

enum { CIMC_MODE_BLOCKING = 1, CIMC_MODE_ASYNC = 2 };

/** Connection states, in order. */
enum {
    CIMC_ST_TCP = 0, /* connected; no handshake (raw, or connecting) */
    CIMC_ST_HELLO,   /* HELLO sent, HELLO_ACK awaited */
    CIMC_ST_SECURE,  /* channel established, not logged in */
    CIMC_ST_READY,   /* LoginRsp{OK} seen */
};

/** Handshake in progress; freed once it completes or fails. */
typedef struct cimc_hs {
    chan_client_t cl;
    size_t hello_len;
    uint8_t hello[CIMC_HELLO_MAX]; /* the ClientHello body exactly as sent */
} cimc_hs_t;

/** Blocking driver: one decrypted frame not yet consumed. */
typedef struct cimc_inframe {
    struct cimc_inframe *next;
    uint32_t type;
    uint32_t len; /* plaintext bytes in body */
    uint8_t body[];
} cimc_inframe_t;

/** Blocking driver: one queued push. */
typedef struct cimc_pushq {
    struct cimc_pushq *next;
    cimc_push_t p;
} cimc_pushq_t;

/** Async driver: one request awaiting its answer (FIFO: answers come in request order). */
typedef struct cimc_pend {
    struct cimc_pend *next;
    cimc_async_rsp_cb cb; /* NULL: internal (heartbeat PING) */
    void *ctx;
    uint64_t sent_ms; /* uv_now() when sent */
    uint32_t req_id;  /* 0: the request has no req_id; matched by ack_type (PING) */
    uint32_t ack_type;
} cimc_pend_t;

struct cimc {
    /* ---- engine ---- */
    int mode;  /* CIMC_MODE_* */
    int state; /* CIMC_ST_* */
    int err;   /* first fatal rc; sticky; 0 while healthy */
    bool eof;  /* the server closed (EOF or reset) */
    bool tofu;
    bool has_pinned;
    bool has_server_key;
    uint8_t pinned[CHAN_KEY];
    uint8_t server_key[CHAN_KEY];
    chan_t ch;
    frame_rd_t rd;
    cimc_hs_t *hs;        /* during the handshake only */
    cim_Bye *bye;         /* the BYE received, if any; owned */
    uint32_t next_req_id; /* next req_id to give; never 0 */
    uint32_t max_body;    /* plaintext cap both ways: 65536 until LoginRsp says */
    uint32_t heartbeat_s; /* from LoginRsp; 0 = none */
    unsigned timeout_ms;
    uint64_t last_tx_ms; /* when the last frame was sent (driver's clock) */

    union {
        struct {
            int fd;
            struct cimc_ws *ws;                /* WebSocket transport (cim_ws.c), or NULL */
            cimc_inframe_t *in_head, *in_tail; /* received, not yet consumed */
            cimc_pushq_t *pq_head, *pq_tail;   /* pushes for cimc_next_push */
            unsigned pq_len;
            cimc_push_cb push_cb;
            void *push_ctx;
        } b;
        struct {
            uv_tcp_t tcp;
            struct cimc_async_loop *al;
            struct cimc *prev, *next; /* the loop's list of connections */
            cimc_async_cbs_t cbs;
            void *ctx;
            cim_LoginReq *login; /* to send after the handshake; owned */
            cimc_pend_t *p_head, *p_tail;
            unsigned npend;
            uint64_t deadline_ms;  /* connect+handshake+login; 0 = none */
            uv_getaddrinfo_t *gai; /* name lookup in flight */
            bool ready_called;     /* on_ready has fired */
            bool closing;          /* uv_close called or about to be */
            bool tcp_closed;       /* on_tcp_close ran */
        } a;
    } u;
};

/** chan_global_init once per process (pthread_once). @return its rc. */
int cimc__global_init(void);

/** Fill the engine part from @p opts (NULL: defaults). */
void cimc__init(cimc_t *c, int mode, const cimc_opts_t *opts);

/** Free the engine part (handshake, partial frame, BYE). */
void cimc__release(cimc_t *c);

/** Largest total frame length accepted now. */
uint32_t cimc__max_frame(const cimc_t *c);

/** Monotonic clock. */
uint64_t cimc__now_us(void);

/**
 * Turn a received frame into its plaintext: opened in place when the channel is up,
 * as is before. @param[out] body, len point into @p frame.
 * @return 0, RC_ECRYPTO.
 */
int cimc__open(cimc_t *c, chan_ctx_t *ctx, uint8_t *frame, uint32_t len, uint8_t **body,
               size_t *blen);

/**
 * Sealed size of a frame of @p pt_len plaintext bytes (plaintext frames before the
 * channel is up).
 */
size_t cimc__frame_len(const cimc_t *c, size_t pt_len);

/**
 * Write one frame into @p out (cimc__frame_len bytes): sealed when the channel is up,
 * plaintext before. @return 0, RC_ECRYPTO.
 */
int cimc__seal(cimc_t *c, chan_ctx_t *ctx, uint32_t type, const uint8_t *pt, size_t pt_len,
               uint8_t *out);

/**
 * Size of @p msg encoded, checked against the current max_body.
 * @return 0, RC_EINVAL (cannot encode), RC_ETOOBIG.
 */
int cimc__pb_size(const cimc_t *c, const pb_msgdesc_t *fields, const void *msg, size_t *out);

/** Encode @p msg into exactly @p len bytes. @return 0, RC_EINVAL. */
int cimc__pb_encode(const pb_msgdesc_t *fields, const void *msg, uint8_t *buf, size_t len);

/**
 * When field 1 of @p msg is a uint32 (every request's req_id), give it the next req_id.
 * @return the id given, or 0 when the message has no such field.
 */
uint32_t cimc__set_req_id(cimc_t *c, const pb_msgdesc_t *fields, void *msg);

/** The req_id (field 1, varint) of an encoded answer; 0 when absent or malformed. */
uint32_t cimc__peek_req_id(const uint8_t *body, size_t len);

/** Make the ClientHello (c->hs). @return 0, RC_ECRYPTO, RC_EINVAL. */
int cimc__hello_start(cimc_t *c);

/**
 * Check a HELLO_ACK body and establish the channel (state SECURE on success; c->hs freed
 * either way). @return 0, RC_EPROTO, RC_EKEY, RC_ECRYPTO.
 */
int cimc__hello_finish(cimc_t *c, const uint8_t *body, size_t len);

/** Decode and keep a BYE body (c->bye). @return 0, RC_EPROTO. */
int cimc__bye_keep(cimc_t *c, const uint8_t *body, size_t len);

/** Adopt max_body / heartbeat_s from a LoginRsp{OK} and enter READY. */
void cimc__login_adopt(cimc_t *c, const cim_LoginRsp *rsp);

/** Map a frame_rd_feed error to the rc the API reports. */
int cimc__feed_rc(int rc);

/* ---- the blocking driver's transport (cim.c), and the WebSocket one (cim_ws.c) ---- */

#define CIMC_WS_SUBPROTOCOL "cim.v1"

/** Wait until @p fd is ready for @p events or the deadline. @return 0, RC_ETIMEDOUT, rc. */
int cimc__wait_fd(int fd, short events, uint64_t deadline_us);

/** Write all of @p p on the blocking connection's socket (raw TCP). @return 0 or rc. */
int cimc__send_all(cimc_t *c, const uint8_t *p, size_t n, uint64_t deadline_us);

/** Feed received bytes (whole frames, or a stream) to the frame reader; opened frames are
 * queued. @return 0, or the reader's rc (map with cimc__feed_rc). */
int cimc__feed(cimc_t *c, uint8_t *buf, size_t n);

/** The WebSocket upgrade on the connected socket (sets c->u.b.ws). @return 0 or rc. */
int cimc__ws_upgrade(cimc_t *c, const char *host, int port, const char *path,
                     uint64_t deadline_us);

/** As read_some / write_all, over the WebSocket. */
int cimc__ws_read(cimc_t *c, uint64_t deadline_us);
int cimc__ws_write(cimc_t *c, const uint8_t *p, size_t n, uint64_t deadline_us);

/** Free the WebSocket state (the socket is the caller's). */
void cimc__ws_free(cimc_t *c);

#endif
