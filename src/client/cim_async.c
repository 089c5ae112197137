/* libcim: the event-driven driver (cimc_async_*), on a caller's libuv loop.
 *
 * Memory per connection is kept small on purpose (a load generator holds thousands):
 *  - reads land in the loop's one buffer (on_alloc); frames lying whole in it are opened
 *    and handled in place; only a trailing partial frame is copied, sized to that frame;
 *  - requests are encoded and sealed in the loop's scratch buffers and written with
 *    uv_try_write; only what the kernel refuses is copied into a queued uv_write;
 *  - what the callbacks of one read send on that read's connection (an answer that
 *    triggers the next request, say) is gathered in the loop's cork buffer and written
 *    with one uv_try_write when the read's frames are handled: one segment, not one per
 *    frame;
 *  - heartbeats and timeouts are one 250 ms timer per loop sweeping its connections, not
 *    one timer per connection;
 *  - the handshake state and the LoginReq to send exist only while connecting.
 *
 * Closing is a single path: fail() marks the connection closing and calls uv_close; every
 * user-visible consequence (requests failing, on_ready with an error, on_close) happens in
 * finish(), from the close callback, so no user callback ever runs inside a cimc_async_*
 * call and none runs after on_close. */
#include "client/cim.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "client/cim_int.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rc.h"

#define RBUF_SIZE 65536 /* the loop's read buffer */
#define TICK_MS   250   /* heartbeat / timeout sweep period */

struct cimc_async_loop {
    uv_loop_t *loop;
    chan_ctx_t *ctx;  /* the loop's cipher contexts, shared by its connections */
    uv_timer_t timer; /* the sweep; unref'd: connections keep the loop alive */
    cimc_t *conns;    /* connections not yet finished (a.prev / a.next) */
    size_t nconns;
    bool freeing; /* cimc_async_loop_free was called */
    bool timer_closed;
    uint8_t *pt; /* scratch: a request's plaintext */
    size_t pt_cap;
    uint8_t *out; /* scratch: the sealed frame */
    size_t out_cap;
    cimc_t *corked; /* the connection whose read is being handled, or NULL */
    uint8_t *cork;  /* what its callbacks wrote meanwhile */
    size_t cork_len, cork_cap;
    uint8_t rbuf[RBUF_SIZE];
};

/* A write the kernel did not take at once. */
typedef struct wreq {
    uv_write_t req;
    uint8_t data[];
} wreq_t;

static void fail(cimc_t *c, int rc);

static uint64_t wall_ms(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_REALTIME, &ts); /* cannot fail for a valid clock id */
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void maybe_free_loop(cimc_async_loop_t *al)
{
    if (!al->freeing || !al->timer_closed || al->nconns > 0)
        return;
    chan_ctx_free(al->ctx);
    mem_free(al->pt);
    mem_free(al->out);
    mem_free(al->cork);
    mem_free(al);
}

/* ---- connection end ------------------------------------------------------------------- */

/* The last act of a connection: fail what is pending, tell the user, free. */
static void finish(cimc_t *c)
{
    cimc_async_loop_t *al = c->u.a.al;
    int status = c->err;
    int why = status != 0 ? status : RC_ECLOSED;
    cimc_pend_t *p;

    while ((p = c->u.a.p_head) != NULL) {
        c->u.a.p_head = p->next;
        c->u.a.npend--;
        if (p->cb != NULL)
            p->cb(c, p->ctx, why, 0, NULL, 0);
        mem_free(p);
    }
    c->u.a.p_tail = NULL;
    if (!c->u.a.ready_called) {
        c->u.a.ready_called = true;
        if (c->u.a.cbs.on_ready != NULL)
            c->u.a.cbs.on_ready(c, c->u.a.ctx, why, NULL);
    }
    if (c->u.a.cbs.on_close != NULL)
        c->u.a.cbs.on_close(c, c->u.a.ctx, status, c->bye);

    if (c->u.a.prev != NULL)
        c->u.a.prev->u.a.next = c->u.a.next;
    else
        al->conns = c->u.a.next;
    if (c->u.a.next != NULL)
        c->u.a.next->u.a.prev = c->u.a.prev;
    al->nconns--;
    chan_forget(al->ctx, &c->ch);
    cimc__release(c);
    if (c->u.a.login != NULL) /* never sent: it holds a token */
        memset(c->u.a.login, 0, sizeof(*c->u.a.login));
    mem_free(c->u.a.login);
    mem_free(c);
    maybe_free_loop(al);
}

static void on_tcp_close(uv_handle_t *h)
{
    cimc_t *c = h->data;

    c->u.a.tcp_closed = true;
    if (c->u.a.gai != NULL) {
        /* The lookup still refers to c: finish when it reports (cancelled or not). */
        (void)uv_cancel((uv_req_t *)c->u.a.gai); /* best effort: it may be running */
        return;
    }
    finish(c);
}

static int uncork(cimc_t *c);

/* Start closing with @p rc (0: the user asked). Idempotent. Frames written before are
 * offered to the kernel first, as they would have been without the cork. */
static void fail(cimc_t *c, int rc)
{
    if (c->u.a.closing)
        return;
    (void)uncork(c); /* best effort, as a write just before a close is */
    c->u.a.closing = true;
    c->err = rc;
    if (rc != 0)
        LOG_DEBUG("libcim: connection closing: %s", rc_str(rc));
    uv_close((uv_handle_t *)&c->u.a.tcp, on_tcp_close);
}

/* ---- output --------------------------------------------------------------------------- */

static void on_write(uv_write_t *req, int status)
{
    wreq_t *w = (wreq_t *)req;
    cimc_t *c = req->data;

    mem_free(w);
    if (status < 0 && status != UV_ECANCELED)
        fail(c, status == UV_EPIPE || status == UV_ECONNRESET ? RC_ECLOSED : status);
}

/* Write: straight to the kernel when nothing is queued, else queue a copy of the rest.
 * Never calls a user callback. */
static int write_now(cimc_t *c, const uint8_t *data, size_t len)
{
    uv_stream_t *s = (uv_stream_t *)&c->u.a.tcp;
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    size_t done = 0;
    wreq_t *w;
    int n, rc;

    if (uv_stream_get_write_queue_size(s) == 0) {
        n = uv_try_write(s, &b, 1);
        if (n >= 0)
            done = (size_t)n;
        else if (n != UV_EAGAIN && n != UV_ENOSYS)
            return n;
    }
    if (done < len) {
        if ((w = mem_try_alloc(sizeof(*w) + (len - done))) == NULL)
            return -ENOMEM;
        memcpy(w->data, data + done, len - done);
        w->req.data = c;
        b = uv_buf_init((char *)w->data, (unsigned)(len - done));
        if ((rc = uv_write(&w->req, s, &b, 1, on_write)) < 0) {
            mem_free(w);
            return rc;
        }
    }
    return 0;
}

static int reserve(uint8_t **buf, size_t *cap, size_t n);

/* Write a frame: into the cork while @p c's read is handled, else at once. */
static int write_out(cimc_t *c, const uint8_t *data, size_t len)
{
    cimc_async_loop_t *al = c->u.a.al;
    int rc;

    if (al->corked == c) {
        if ((rc = reserve(&al->cork, &al->cork_cap, al->cork_len + len)) < 0)
            return rc;
        memcpy(al->cork + al->cork_len, data, len);
        al->cork_len += len;
    } else if ((rc = write_now(c, data, len)) < 0) {
        return rc;
    }
    c->last_tx_ms = uv_now(al->loop);
    return 0;
}

/* End @p c's cork, if it has it: write what it gathered. */
static int uncork(cimc_t *c)
{
    cimc_async_loop_t *al = c->u.a.al;
    size_t len = al->cork_len;

    if (al->corked != c)
        return 0;
    al->corked = NULL;
    al->cork_len = 0;
    return len > 0 && !c->u.a.closing ? write_now(c, al->cork, len) : 0;
}

static int reserve(uint8_t **buf, size_t *cap, size_t n)
{
    uint8_t *p;

    if (n <= *cap)
        return 0;
    if ((p = mem_try_realloc(*buf, n)) == NULL)
        return -ENOMEM;
    *buf = p;
    *cap = n;
    return 0;
}

/* Encode, seal and write one frame; register the answer awaited (ack_type != 0).
 * @p set_id: give @p msg the next req_id (it is then modified). */
static int submit(cimc_t *c, uint32_t type, const pb_msgdesc_t *fields, void *msg, bool set_id,
                  uint32_t ack_type, cimc_async_rsp_cb cb, void *ctx, uint32_t *req_id)
{
    cimc_async_loop_t *al;
    cimc_pend_t *p;
    size_t n, flen;
    uint32_t id = 0;
    int rc;

    if (c == NULL || c->mode != CIMC_MODE_ASYNC || fields == NULL || msg == NULL)
        return RC_EINVAL;
    if (c->u.a.closing || c->state < CIMC_ST_SECURE)
        return RC_ECLOSED;
    al = c->u.a.al;
    if (set_id)
        id = cimc__set_req_id(c, fields, msg);
    if ((rc = cimc__pb_size(c, fields, msg, &n)) < 0)
        return rc;
    flen = cimc__frame_len(c, n);
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->u.a.tcp) +
            (al->corked == c ? al->cork_len : 0) + flen >
        CIMC_ASYNC_WQ_MAX)
        return RC_EFULL;
    if ((rc = reserve(&al->pt, &al->pt_cap, n)) < 0 ||
        (rc = reserve(&al->out, &al->out_cap, flen)) < 0)
        return rc;
    if ((rc = cimc__pb_encode(fields, msg, al->pt, n)) < 0)
        return rc;
    /* From here a failure leaves the nonce counter or the stream out of step: the
     * connection cannot go on. */
    if ((rc = cimc__seal(c, al->ctx, type, al->pt, n, al->out)) < 0 ||
        (rc = write_out(c, al->out, flen)) < 0) {
        fail(c, rc);
        return rc;
    }
    if (ack_type != 0) {
        p = mem_alloc(sizeof(*p));
        p->next = NULL;
        p->cb = cb;
        p->ctx = ctx;
        p->sent_ms = uv_now(al->loop);
        p->req_id = id;
        p->ack_type = ack_type;
        if (c->u.a.p_tail != NULL)
            c->u.a.p_tail->next = p;
        else
            c->u.a.p_head = p;
        c->u.a.p_tail = p;
        c->u.a.npend++;
    }
    if (req_id != NULL)
        *req_id = id;
    return 0;
}

/* ---- input ---------------------------------------------------------------------------- */

static void ready(cimc_t *c, const cim_LoginRsp *rsp)
{
    c->u.a.ready_called = true;
    c->u.a.deadline_ms = 0;
    if (c->u.a.cbs.on_ready != NULL)
        c->u.a.cbs.on_ready(c, c->u.a.ctx, 0, rsp);
}

/* The LoginRsp of the login given to cimc_async_connect. */
static void on_login_rsp(cimc_t *c, void *ctx, int status, uint32_t type, const uint8_t *body,
                         size_t len)
{
    cim_LoginRsp rsp = cim_LoginRsp_init_zero;

    (void)ctx;
    (void)type;
    if (status < 0)
        return; /* finish() reports the failure through on_ready */
    if (cimc_decode(cim_LoginRsp_fields, body, len, &rsp) < 0) {
        fail(c, RC_EPROTO);
        return;
    }
    ready(c, &rsp);
}

static int after_handshake(cimc_t *c)
{
    cim_LoginReq *login = c->u.a.login;
    int rc;

    if (login == NULL) {
        ready(c, NULL);
        return 0;
    }
    rc = submit(c, FT_LOGIN, cim_LoginReq_fields, login, true, FT_LOGIN_ACK, on_login_rsp, NULL,
                NULL);
    c->u.a.login = NULL; /* encoded: the copy (with its token) is no longer needed */
    memset(login, 0, sizeof(*login));
    mem_free(login);
    return rc;
}

static int deliver_answer(cimc_t *c, uint32_t type, const uint8_t *body, size_t len)
{
    cimc_pend_t *p, *prev = NULL;
    cim_LoginRsp rsp;
    uint32_t rid;

    /* Pong's field 1 is a time, not a req_id: a PONG answers the oldest PING. */
    rid = type == FT_PONG ? 0 : cimc__peek_req_id(body, len);
    for (p = c->u.a.p_head; p != NULL; prev = p, p = p->next)
        if (rid != 0 ? p->req_id == rid : (p->req_id == 0 && p->ack_type == type))
            break;
    if (p == NULL) {
        LOG_RL(LOG_LVL_WARN, "libcim: unexpected %s (req_id %u) ignored", frame_type_name(type),
               rid);
        return 0;
    }
    if (p->ack_type != type) {
        LOG_DEBUG("libcim: req_id %u answered with %s, not %s", rid, frame_type_name(type),
                  frame_type_name(p->ack_type));
        return RC_EPROTO;
    }
    if (prev != NULL)
        prev->next = p->next;
    else
        c->u.a.p_head = p->next;
    if (c->u.a.p_tail == p)
        c->u.a.p_tail = prev;
    c->u.a.npend--;
    if (type == FT_LOGIN_ACK) {
        memset(&rsp, 0, sizeof(rsp));
        if (cimc_decode(cim_LoginRsp_fields, body, len, &rsp) < 0) {
            mem_free(p);
            return RC_EPROTO;
        }
        cimc__login_adopt(c, &rsp);
    }
    if (p->cb != NULL)
        p->cb(c, p->ctx, 0, type, body, len);
    mem_free(p);
    return 0;
}

static int deliver_push(cimc_t *c, uint32_t type, const uint8_t *body, size_t len)
{
    cimc_push_t p;
    int rc;

    if ((rc = cimc_push_decode(type, body, len, &p)) < 0)
        return rc;
    if (c->u.a.cbs.on_push != NULL)
        c->u.a.cbs.on_push(c, c->u.a.ctx, &p);
    cimc_push_free(&p);
    return 0;
}

/* frame_rd callback: one complete frame, in the loop's buffer or the reassembly block. */
static int on_frame(void *arg, uint32_t type, uint8_t *frame, uint32_t len)
{
    cimc_t *c = arg;
    uint8_t *body;
    size_t blen;
    int rc;

    if (c->u.a.closing)
        return RC_ECLOSED;
    if ((rc = cimc__open(c, c->u.a.al->ctx, frame, len, &body, &blen)) < 0)
        return rc;
    if (c->state == CIMC_ST_HELLO) {
        if (type != FT_HELLO_ACK)
            return RC_EPROTO;
        if ((rc = cimc__hello_finish(c, body, blen)) < 0)
            return rc;
        rc = after_handshake(c);
    } else if (c->state < CIMC_ST_HELLO || type == FT_HELLO_ACK || frame_type_from_client(type)) {
        rc = RC_EPROTO;
    } else if (type == FT_BYE) {
        if ((rc = cimc__bye_keep(c, body, blen)) == 0)
            rc = RC_ECLOSED; /* BYE is the server's last frame */
    } else if (type == FT_PUSH || type == FT_EVENT) {
        rc = deliver_push(c, type, body, blen);
    } else {
        rc = deliver_answer(c, type, body, blen);
    }
    if (rc == 0 && c->u.a.closing)
        rc = RC_ECLOSED; /* a callback closed it: stop feeding */
    return rc;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    cimc_t *c = h->data;

    (void)suggested; /* 64 KiB per connection is what we avoid: the loop's buffer */
    buf->base = (char *)c->u.a.al->rbuf;
    buf->len = RBUF_SIZE;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    cimc_t *c = s->data;
    int rc;

    if (c->u.a.closing || nread == 0)
        return;
    if (nread < 0) {
        fail(c, nread == UV_EOF || nread == UV_ECONNRESET ? RC_ECLOSED : (int)nread);
        return;
    }
    c->u.a.al->corked = c;
    rc =
        frame_rd_feed(&c->rd, (uint8_t *)buf->base, (size_t)nread, cimc__max_frame(c), on_frame, c);
    if (rc != 0)
        fail(c, cimc__feed_rc(rc)); /* no-op when a callback already closed it */
    if ((rc = uncork(c)) < 0)
        fail(c, rc == UV_EPIPE || rc == UV_ECONNRESET ? RC_ECLOSED : rc);
}

/* ---- connecting ----------------------------------------------------------------------- */

static void on_connect(uv_connect_t *req, int status)
{
    cimc_t *c = req->data;
    int rc;

    mem_free(req);
    if (c->u.a.closing)
        return;
    if (status < 0) {
        fail(c, status);
        return;
    }
    (void)uv_tcp_nodelay(&c->u.a.tcp, 1); /* best effort: only latency depends on it */
    if ((rc = uv_read_start((uv_stream_t *)&c->u.a.tcp, on_alloc, on_read)) < 0 ||
        (rc = cimc__hello_start(c)) < 0 ||
        (rc = reserve(&c->u.a.al->out, &c->u.a.al->out_cap, FRAME_HANDSHAKE_MAX)) < 0 ||
        (rc = cimc__seal(c, NULL, FT_HELLO, c->hs->hello, c->hs->hello_len, c->u.a.al->out)) < 0 ||
        (rc = write_out(c, c->u.a.al->out, cimc__frame_len(c, c->hs->hello_len))) < 0)
        fail(c, rc);
}

static int start_connect(cimc_t *c, const struct sockaddr *addr)
{
    uv_connect_t *req = mem_alloc(sizeof(*req));
    int rc;

    req->data = c;
    if ((rc = uv_tcp_connect(req, &c->u.a.tcp, addr, on_connect)) < 0)
        mem_free(req);
    return rc;
}

/* opts.bind_addr: bind the source address; the port waits for connect (Linux:
 * IP_BIND_ADDRESS_NO_PORT), so ports are shared between destinations. */
static int bind_source(cimc_t *c, const struct sockaddr *addr)
{
#ifdef IP_BIND_ADDRESS_NO_PORT
    uv_os_fd_t fd;
    int one = 1;

    if (uv_fileno((uv_handle_t *)&c->u.a.tcp, &fd) == 0)
        /* best effort: without it the port is chosen at bind, still per source address */
        (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
#endif
    return uv_tcp_bind(&c->u.a.tcp, addr, 0);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    cimc_t *c = req->data;
    int rc;

    mem_free(req);
    c->u.a.gai = NULL;
    if (c->u.a.closing) {
        uv_freeaddrinfo(res);
        if (c->u.a.tcp_closed)
            finish(c);
        return;
    }
    if (status < 0 || res == NULL) {
        LOG_DEBUG("libcim: name lookup failed: %s", uv_strerror(status));
        uv_freeaddrinfo(res);
        fail(c, RC_ENOTFOUND);
        return;
    }
    /* Prefer an IPv4 address: "localhost" often lists ::1 first while servers commonly
     * listen on 127.0.0.1 only (the blocking API tries every address in turn). */
    {
        const struct addrinfo *ai = res;
        for (const struct addrinfo *p = res; p != NULL; p = p->ai_next)
            if (p->ai_family == AF_INET) {
                ai = p;
                break;
            }
        rc = start_connect(c, ai->ai_addr);
    }
    uv_freeaddrinfo(res);
    if (rc < 0)
        fail(c, rc);
}

int cimc_async_connect(cimc_async_loop_t *al, const cimc_opts_t *opts, const cim_LoginReq *login,
                       const cimc_async_cbs_t *cbs, void *ctx, cimc_t **out)
{
    const char *host = opts != NULL && opts->host != NULL ? opts->host : "127.0.0.1";
    int port = opts != NULL && opts->port != 0 ? opts->port : 7400;
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct sockaddr_storage ss, bs;
    int bfam = AF_UNSPEC;
    char service[16];
    cimc_t *c;
    int rc;

    if (opts != NULL && opts->ws_path != NULL)
        return RC_EINVAL; /* WebSocket: the blocking API only */

    if (al == NULL || port < 1 || port > 65535)
        return RC_EINVAL;
    if (opts != NULL && opts->bind_addr != NULL) {
        if (uv_ip4_addr(opts->bind_addr, 0, (struct sockaddr_in *)&bs) == 0)
            bfam = AF_INET;
        else if (uv_ip6_addr(opts->bind_addr, 0, (struct sockaddr_in6 *)&bs) == 0)
            bfam = AF_INET6;
        else
            return RC_EINVAL;
    }
    if (al->freeing)
        return RC_ECLOSED;
    c = mem_calloc(sizeof(*c));
    cimc__init(c, CIMC_MODE_ASYNC, opts);
    c->u.a.al = al;
    c->u.a.ctx = ctx;
    if (cbs != NULL)
        c->u.a.cbs = *cbs;
    /* A source address to bind needs the socket now, of its family. */
    rc = bfam != AF_UNSPEC ? uv_tcp_init_ex(al->loop, &c->u.a.tcp, (unsigned)bfam)
                           : uv_tcp_init(al->loop, &c->u.a.tcp);
    if (rc < 0) {
        mem_free(c);
        return rc;
    }
    c->u.a.tcp.data = c;
    c->u.a.next = al->conns;
    if (al->conns != NULL)
        al->conns->u.a.prev = c;
    al->conns = c;
    al->nconns++;
    if (login != NULL) {
        c->u.a.login = mem_alloc(sizeof(*login));
        memcpy(c->u.a.login, login, sizeof(*login));
    }
    /* The loop's clock is cached: a caller starting thousands of connections outside a
     * callback would otherwise give them deadlines in the past. */
    uv_update_time(al->loop);
    c->u.a.deadline_ms = uv_now(al->loop) + c->timeout_ms;

    rc = bfam != AF_UNSPEC ? bind_source(c, (struct sockaddr *)&bs) : 0;
    if (rc < 0) {
        /* reported below, as a connect that could not start */
    } else if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) == 0 ||
               uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) == 0) {
        rc = start_connect(c, (struct sockaddr *)&ss);
    } else {
        snprintf(service, sizeof(service), "%d", port);
        c->u.a.gai = mem_alloc(sizeof(*c->u.a.gai));
        c->u.a.gai->data = c;
        if ((rc = uv_getaddrinfo(al->loop, c->u.a.gai, on_resolved, host, service, &hints)) < 0) {
            mem_free(c->u.a.gai);
            c->u.a.gai = NULL;
        }
    }
    if (rc < 0) {
        /* The contract: no callback after a failed start. */
        memset(&c->u.a.cbs, 0, sizeof(c->u.a.cbs));
        fail(c, rc);
        return rc;
    }
    if (out != NULL)
        *out = c;
    return 0;
}

/* ---- requests ------------------------------------------------------------------------- */

int cimc_async_request(cimc_t *c, uint32_t type, const pb_msgdesc_t *fields, void *req,
                       uint32_t ack_type, cimc_async_rsp_cb cb, void *ctx, uint32_t *req_id)
{
    if (ack_type == 0)
        return RC_EINVAL;
    return submit(c, type, fields, req, true, ack_type, cb, ctx, req_id);
}

int cimc_async_ping(cimc_t *c, cimc_async_rsp_cb cb, void *ctx)
{
    cim_Ping ping = cim_Ping_init_zero;

    ping.client_time_ms = wall_ms();
    return submit(c, FT_PING, cim_Ping_fields, &ping, false, FT_PONG, cb, ctx, NULL);
}

int cimc_async_send_frame(cimc_t *c, uint32_t type, const pb_msgdesc_t *fields, const void *msg)
{
    /* set_id is false: the message is only read. */
    return submit(c, type, fields, (void *)msg, false, 0, NULL, NULL, NULL);
}

void cimc_async_close(cimc_t *c)
{
    if (c == NULL || c->mode != CIMC_MODE_ASYNC)
        return;
    fail(c, 0);
}

void *cimc_async_ctx(const cimc_t *c)
{
    return c != NULL && c->mode == CIMC_MODE_ASYNC ? c->u.a.ctx : NULL;
}

bool cimc_async_is_open(const cimc_t *c)
{
    return c != NULL && c->mode == CIMC_MODE_ASYNC && c->u.a.ready_called && !c->u.a.closing &&
           c->state >= CIMC_ST_SECURE;
}

unsigned cimc_async_pending(const cimc_t *c)
{
    return c != NULL && c->mode == CIMC_MODE_ASYNC ? c->u.a.npend : 0;
}

/* ---- the loop ------------------------------------------------------------------------- */

/* Every TICK_MS: connection deadlines, answer timeouts, heartbeats. */
static void on_tick(uv_timer_t *t)
{
    cimc_async_loop_t *al = t->data;
    uint64_t now = uv_now(al->loop);
    cim_Ping ping;
    cimc_t *c;
    int rc;

    for (c = al->conns; c != NULL; c = c->u.a.next) {
        if (c->u.a.closing)
            continue;
        if (c->u.a.deadline_ms != 0 && now >= c->u.a.deadline_ms) {
            fail(c, RC_ETIMEDOUT);
            continue;
        }
        if (c->u.a.p_head != NULL && now - c->u.a.p_head->sent_ms >= c->timeout_ms) {
            LOG_DEBUG("libcim: no %s within %u ms", frame_type_name(c->u.a.p_head->ack_type),
                      c->timeout_ms);
            fail(c, RC_ETIMEDOUT);
            continue;
        }
        if (c->state == CIMC_ST_READY && c->heartbeat_s != 0 &&
            now - c->last_tx_ms >= (uint64_t)c->heartbeat_s * 1000) {
            memset(&ping, 0, sizeof(ping));
            ping.client_time_ms = wall_ms();
            rc = submit(c, FT_PING, cim_Ping_fields, &ping, false, FT_PONG, NULL, NULL, NULL);
            if (rc < 0 && rc != RC_EFULL) /* full: the server is behind; try next tick */
                fail(c, rc);
        }
    }
}

static void on_timer_close(uv_handle_t *h)
{
    cimc_async_loop_t *al = h->data;

    al->timer_closed = true;
    maybe_free_loop(al);
}

int cimc_async_loop_new(uv_loop_t *loop, cimc_async_loop_t **out)
{
    cimc_async_loop_t *al;
    int rc;

    if (loop == NULL)
        return RC_EINVAL;
    if ((rc = cimc__global_init()) < 0)
        return rc;
    al = mem_calloc(sizeof(*al));
    al->loop = loop;
    if ((rc = uv_timer_init(loop, &al->timer)) < 0) {
        mem_free(al);
        return rc;
    }
    al->ctx = chan_ctx_new();
    al->timer.data = al;
    uv_unref((uv_handle_t *)&al->timer);
    if ((rc = uv_timer_start(&al->timer, on_tick, TICK_MS, TICK_MS)) < 0) {
        al->freeing = true;
        uv_close((uv_handle_t *)&al->timer, on_timer_close);
        return rc;
    }
    *out = al;
    return 0;
}

void cimc_async_loop_free(cimc_async_loop_t *al)
{
    cimc_t *c;

    if (al == NULL || al->freeing)
        return;
    al->freeing = true;
    for (c = al->conns; c != NULL; c = c->u.a.next)
        fail(c, 0);
    uv_close((uv_handle_t *)&al->timer, on_timer_close);
}

size_t cimc_async_loop_count(const cimc_async_loop_t *al)
{
    return al != NULL ? al->nconns : 0;
}
