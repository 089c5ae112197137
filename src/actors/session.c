/* session: the connection actor — input path, output path, closing. The handshake and
 * login handlers live in session_auth.c. */
#include "actors/session.h"

#include <string.h>
#include <unistd.h>

#include <pb_decode.h>
#include <pb_encode.h>

#include "actors/cluster.h"
#include "actors/message.h"
#include "actors/relay.h"
#include "actors/router.h"
#include "actors/send.h"
#include "actors/store.h"
#include "actors/ws.h"
#include "actors/xonline.h"
#include "cim.pb.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rc.h"
#include "core/str.h"

/* Bytes a session may hold for its peer (conf max_conn_queue_kb: sealed on its socket,
 * answers or pushes waiting) before it counts as a slow consumer and is closed with
 * BYE{SERVER_BUSY}. Pushes never skip, so the device catches up with SYNC after
 * reconnecting. */
#define SESSION_OUT_MAX(s) ((uint32_t)(s)->w->srv->conf->max_conn_queue_kb << 10)

/* Frames sealed during one loop turn are gathered and written together at its end (one
 * write system call for a burst of answers and pushes); a cork this big is written at
 * once. */
#define SESSION_CORK_MAX (64u << 10)

/* Sealed bytes the kernel did not take at once: the write in flight, or the pending
 * buffer that collects what comes while one is in flight (len of cap used). */
typedef struct wreq {
    uv_write_t req;
    uint32_t len, cap;
    uint8_t data[];
} wreq_t;

/* Blocks this big come from mmap (server_start fixes the threshold), so a slow reader's
 * backlog goes back to the system when it is freed. */
#define SESSION_PEND_MIN 4096u

/* An answer that waits for earlier requests still with the store. */
typedef struct reply {
    struct reply *next;
    uint32_t after;   /* send once async_done has reached this */
    uint32_t type;
    uint32_t len;
    bool request;     /* a request to run (data: its plaintext), not an answer to send */
    uint8_t data[];   /* the encoded (not yet sealed) body */
} reply_t;

/* Count @p delta bytes held for this session's peer in the server's budget. */
static void charge(session_t *s, int64_t delta)
{
    atomic_fetch_add_explicit(&s->w->srv->queued, (uint64_t)delta, memory_order_relaxed);
}

/* Keep the worker's backlog list: the sessions the kernel would not take bytes from. */
static void backlog_update(session_t *s)
{
    worker_t *w = s->w;
    bool want = s->out_bytes > 0 && !s->closed;

    if (want == s->backlogged)
        return;
    s->backlogged = want;
    if (want) {
        s->bl_prev = NULL;
        s->bl_next = w->backlog;
        if (w->backlog)
            w->backlog->bl_prev = s;
        w->backlog = s;
        return;
    }
    if (s->bl_prev)
        s->bl_prev->bl_next = s->bl_next;
    else
        w->backlog = s->bl_next;
    if (s->bl_next)
        s->bl_next->bl_prev = s->bl_prev;
    s->bl_prev = s->bl_next = NULL;
}

static void session_free(session_t *s)
{
    worker_t *w = s->w;
    reply_t *r, *next;

    for (r = s->rq_head; r != NULL; r = next) {
        next = r->next;
        mem_free(r);
    }
    for (r = s->pq_head; r != NULL; r = next) {
        next = r->next;
        mem_free(r);
    }
    /* Writes in flight were cancelled (on_write) before this callback. */
    if (s->wr_pend != NULL) {
        s->out_bytes -= s->wr_pend->len;
        s->w->freed += s->wr_pend->len;
        mem_free(s->wr_pend);
    }
    /* A reader that went away behind leaves its buffers' memory to give back (the sweep
     * trims the heap once much has gone this way; not on every write, which would stall
     * the loop for nothing). */
    s->w->freed += session__held(s);
    charge(s, -(int64_t)session__held(s));
    s->out_bytes = s->rq_bytes = s->pq_bytes = 0;
    backlog_update(s);
    if (s->corked)
        worker__uncork(w, s);
    mem_free(s->cork);

    worker__list_del(s);
    worker__del(w, s);
    frame_rd_close(&s->rd);
    if (s->relay == RELAY_HOME)
        relay__map_del(w, s); /* no connection here to count */
    else if (!s->is_ws) /* a WebSocket's TCP connection is ws.c's to count */
        acceptor_conn_closed(w->srv->acceptor, &s->peer);
    chan_forget(w->cc, &s->ch); /* keys do not outlive the connection */
    memset(&s->ch, 0, sizeof(s->ch));
    mem_free(s->ids);
    mem_free(s);
    worker__maybe_finish(w); /* shutting down: the last session out closes the loop */
}

static void on_close(uv_handle_t *h)
{
    session_free(h->data);
}

static void close_handle(session_t *s)
{
    if (s->closed)
        return;
    s->closed = true;
    s->state = SESSION_ST_CLOSING;
    s->cork_len = 0; /* unsent frames die with the connection */
    backlog_update(s);
    session__unroute(s);
    relay_detach(s);
    worker__list_del(s);
    if (s->relay == RELAY_HOME) {
        /* No handle: freed at the end of the loop turn (session__flush), never under a
         * caller that still holds it. */
        s->relay_kill = true;
        worker__cork(s->w, s);
        return;
    }
    if (s->is_ws) {
        /* Never from inside the connection's own callbacks (h2o and wslay are on the
         * stack): at the end of the loop turn, session__flush ends it. */
        s->ws_kill = true;
        worker__cork(s->w, s);
        return;
    }
    uv_close((uv_handle_t *)&s->tcp, on_close);
}

/* One info line per closed connection: who, from where, and why. */
static void log_close(const session_t *s, const char *how, const char *why)
{
    char peer[PEER_ADDR_STRLEN];
    if (s->user != NULL)
        LOG_INFO("session %llx: %s from %s (%s/%s on %s): %s", (unsigned long long)s->sid, how,
                 peer_addr_str(&s->peer, peer), s->app, s->user, s->device, why);
    else
        LOG_INFO("session %llx: %s from %s: %s", (unsigned long long)s->sid, how,
                 peer_addr_str(&s->peer, peer), why);
}

void session_abort(session_t *s, const char *why)
{
    if (s->closed)
        return;
    if (s->state != SESSION_ST_CLOSING) /* else its close was logged already */
        log_close(s, "closed", why);
    close_handle(s);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    session_t *s = req->data;
    (void)status; /* closing either way */
    mem_free(req);
    close_handle(s);
}

/* Flush what is queued, then close. The sweep force-closes a session that cannot flush
 * (a peer that stopped reading) after a grace period. */
static void flush_and_close(session_t *s)
{
    uv_shutdown_t *req;

    if (s->closed)
        return;
    s->state = SESSION_ST_CLOSING;
    session__unroute(s);
    relay_detach(s);
    if (s->reading) {
        uv_read_stop((uv_stream_t *)&s->tcp);
        s->reading = false;
    }
    s->since_ms = worker_now(s->w);
    worker__list_move(s->w, s, &s->w->closing);
    if (session__flush(s) < 0)
        return; /* closed */
    if (s->relay == RELAY_HOME) {
        close_handle(s); /* its frames are on the bus already */
        return;
    }
    if (s->is_ws) {
        ws_close(s, WS_CLOSE_NORMAL, ""); /* the closing handshake; ws.c ends the session */
        return;
    }
    req = mem_alloc(sizeof(*req));
    req->data = s;
    if (uv_shutdown(req, (uv_stream_t *)&s->tcp, on_shutdown) < 0) {
        mem_free(req);
        close_handle(s);
    }
}

/* A reader too far behind is being closed: what it has not been sent yet (the pending
 * buffer and the cork: whole sealed frames the kernel never saw) is dropped, so that its
 * memory is free at once and the BYE follows what is already in flight. The frames'
 * nonces were never used on the wire, so sealing continues from the first dropped one and
 * the peer, which opens frames in counter order, can read the BYE. Nothing is lost that
 * matters: the device catches up with SYNC after reconnecting, as after any close. */
static void drop_unsent(session_t *s)
{
    if (s->wr_pend != NULL) {
        uint32_t n = s->wr_pend->len;
        s->ch.tx_ctr = s->pend_ctr;
        s->w->freed += n;
        mem_free(s->wr_pend);
        s->wr_pend = NULL;
        s->out_bytes -= n;
        charge(s, -(int64_t)n);
    } else if (s->writing && s->cork_len > 0) {
        s->ch.tx_ctr = s->cork_ctr;
    } else {
        return; /* nothing behind: the peer keeps up */
    }
    s->cork_len = 0;
    backlog_update(s);
}

void session__ws_out(session_t *s, int64_t delta)
{
    if (delta < 0 && (uint64_t)-delta > s->out_bytes)
        delta = -(int64_t)s->out_bytes; /* wslay's own framing bytes are not counted */
    s->out_bytes = (uint32_t)((int64_t)s->out_bytes + delta);
    charge(s, delta);
    backlog_update(s);
}

void session__ws_fail(session_t *s, int code, const char *why)
{
    if (s->closed || s->state == SESSION_ST_CLOSING)
        return;
    log_close(s, "closed", why);
    s->state = SESSION_ST_CLOSING;
    session__unroute(s);
    relay_detach(s);
    s->since_ms = worker_now(s->w);
    worker__list_move(s->w, s, &s->w->closing);
    ws_close(s, code, why);
}

void session_close(session_t *s, int code, const char *reason)
{
    cim_Bye bye = cim_Bye_init_zero;

    if (s->closed || s->state == SESSION_ST_CLOSING)
        return;
    if (s->state == SESSION_ST_HELLO) {
        session_abort(s, reason); /* no keys yet: nothing can be said */
        return;
    }
    log_close(s, code == cim_Code_SERVER_BUSY ? "closing (BYE SERVER_BUSY)"
                 : code == cim_Code_KICKED        ? "closing (BYE KICKED)"
                 : code == cim_Code_TIMEOUT       ? "closing (BYE TIMEOUT)"
                 : code == cim_Code_SHUTTING_DOWN ? "closing (BYE SHUTTING_DOWN)"
                                                  : "closing (BYE)",
              reason);
    if (code == cim_Code_SERVER_BUSY)
        drop_unsent(s);
    bye.code = (cim_Code)code;
    str_copy(bye.reason, sizeof(bye.reason), reason);
    if (session_send(s, FT_BYE, cim_Bye_fields, &bye) < 0)
        return; /* session_send closed it */
    flush_and_close(s);
}

void session_finish(session_t *s)
{
    if (!s->closed && s->state != SESSION_ST_CLOSING) {
        log_close(s, "closing", "logged out");
        flush_and_close(s);
    }
}

static int start_write(session_t *s, wreq_t *wr);

static void on_write(uv_write_t *req, int status)
{
    wreq_t *wr = container_of(req, wreq_t, req);
    session_t *s = req->handle->data;

    s->out_bytes -= wr->len;
    charge(s, -(int64_t)wr->len);
    if (status == UV_ECANCELED)
        s->w->freed += wr->len; /* a backlog that dies with its connection */
    s->writing = false;
    mem_free(wr);
    if (status < 0) {
        if (status != UV_ECANCELED)
            session_abort(s, uv_strerror(status));
    } else if (s->wr_pend != NULL) {
        wr = s->wr_pend;
        s->wr_pend = NULL;
        (void)start_write(s, wr); /* a failure closes s */
    }
    backlog_update(s);
}

/* Put @p wr (counted in out_bytes) in flight. */
static int start_write(session_t *s, wreq_t *wr)
{
    uv_buf_t buf = uv_buf_init((char *)wr->data, wr->len);
    int rc = uv_write(&wr->req, (uv_stream_t *)&s->tcp, &buf, 1, on_write);

    if (rc < 0) {
        s->out_bytes -= wr->len;
        charge(s, -(int64_t)wr->len);
        mem_free(wr);
        session_abort(s, uv_strerror(rc));
        return rc;
    }
    s->writing = true;
    return 0;
}

/* Append @p len bytes — a cork: whole sealed frames from s->cork_ctr on — to the pending
 * buffer (grown by doubling). */
static void pend_bytes(session_t *s, const uint8_t *data, uint32_t len)
{
    wreq_t *p = s->wr_pend;

    if (p == NULL)
        s->pend_ctr = s->cork_ctr;
    uint32_t need = (p ? p->len : 0) + len, cap = p ? p->cap : 0;

    if (need > cap) {
        cap = cap ? cap : SESSION_PEND_MIN;
        while (cap < need)
            cap *= 2;
        p = mem_realloc(p, sizeof(*p) + cap);
        if (s->wr_pend == NULL)
            p->len = 0;
        p->cap = cap;
        s->wr_pend = p;
    }
    memcpy(p->data + p->len, data, len);
    p->len += len;
    s->out_bytes += len;
    charge(s, len);
}

/* Write @p len sealed bytes: what the kernel takes now, then queue the rest (one write
 * in flight; later bytes wait in the pending buffer). */
static int write_bytes(session_t *s, const uint8_t *data, uint32_t len)
{
    uv_buf_t buf;
    wreq_t *wr;
    int n = 0;

    ctr_add(&s->w->stats.bytes_out, len);
    if (s->is_ws)
        return ws_write(s, data, len);
    if (s->writing || s->wr_pend != NULL) {
        pend_bytes(s, data, len);
        backlog_update(s);
        return 0;
    }
    buf = uv_buf_init((char *)data, len);
    n = uv_try_write((uv_stream_t *)&s->tcp, &buf, 1);
    if (n == (int)len)
        return 0;
    if (n < 0 && n != UV_EAGAIN) {
        session_abort(s, uv_strerror(n));
        return n;
    }
    if (n < 0)
        n = 0;
    wr = mem_alloc(sizeof(*wr) + (len - (uint32_t)n));
    wr->len = wr->cap = len - (uint32_t)n;
    memcpy(wr->data, data + n, wr->len);
    s->out_bytes += wr->len;
    charge(s, wr->len);
    if ((n = start_write(s, wr)) < 0)
        return n;
    backlog_update(s);
    return 0;
}

int session__flush(session_t *s)
{
    int rc = 0;
    if (s->ws_kill) { /* a closed WebSocket session, now outside its callbacks */
        ws_release(s);
        session_free(s);
        return RC_ECLOSED;
    }
    if (s->relay_kill) { /* a closed remote session */
        session_free(s);
        return RC_ECLOSED;
    }
    if (s->cork_len > 0 && !s->closed)
        rc = write_bytes(s, s->cork, s->cork_len);
    s->cork_len = 0;
    /* An idle session holds no buffer. */
    mem_free(s->cork);
    s->cork = NULL;
    s->cork_cap = 0;
    return rc;
}

/* Queue @p len sealed bytes in the session's cork, written at the end of the loop turn.
 * The cap on queued bytes is checked by the caller before sealing (a frame sealed and then
 * dropped would desynchronise the peer's nonce counter). */
static int queue_bytes(session_t *s, const uint8_t *data, uint32_t len, uint64_t ctr)
{
    if (s->cork_len == 0)
        s->cork_ctr = ctr;
    if (s->cork_len + len > s->cork_cap) {
        /* Sized to the need (most turns carry one small frame per session: a push to a
         * group member), so a fan-out to thousands of sessions makes small allocations,
         * not pages the allocator maps and trims each turn. */
        uint32_t cap = s->cork_cap ? s->cork_cap * 2 : 256;
        while (cap < s->cork_len + len)
            cap *= 2;
        s->cork = mem_realloc(s->cork, cap);
        s->cork_cap = cap;
    }
    memcpy(s->cork + s->cork_len, data, len);
    s->cork_len += len;
    worker__cork(s->w, s);
    if (s->cork_len >= SESSION_CORK_MAX)
        return session__flush(s);
    return 0;
}

int session__send_plain(session_t *s, uint32_t type, const uint8_t *body, size_t len)
{
    uint8_t out[FRAME_HANDSHAKE_MAX];

    if (len + FRAME_HDR > sizeof(out))
        return RC_ETOOBIG;
    frame_hdr_write(out, (uint32_t)(FRAME_HDR + len), type);
    memcpy(out + FRAME_HDR, body, len);
    return queue_bytes(s, out, (uint32_t)(FRAME_HDR + len), s->ch.tx_ctr);
}

/* Would @p more bytes for @p s take the server past its output budget? Only a session
 * that is itself behind (bytes already waiting on its socket) triggers shedding from the
 * send path; the sweep sheds for the rest. */
static bool over_budget(const session_t *s, size_t more)
{
    uint64_t budget = (uint64_t)s->w->srv->conf->max_queued_mb << 20;
    return s->out_bytes > 0 &&
           atomic_load_explicit(&s->w->srv->queued, memory_order_relaxed) + more > budget;
}

unsigned session__shed(worker_t *w, bool all)
{
    uint64_t budget = (uint64_t)w->srv->conf->max_queued_mb << 20;
    /* What will be held once the sessions closed here are gone (a closed session's bytes
     * are freed by its close callback, a loop turn later): shed no more than needed. */
    uint64_t q = atomic_load_explicit(&w->srv->queued, memory_order_relaxed);
    session_t *s, *heavy, *heavy_closing;
    uint64_t others = 0;
    unsigned n = 0;

    if (!all)
        for (uint32_t i = 0; i < w->srv->nworkers; i++)
            if (w->srv->workers[i] != w) {
                uint64_t h =
                    atomic_load_explicit(&w->srv->workers[i]->heaviest, memory_order_relaxed);
                others = h > others ? h : others;
            }
    while (q > budget) {
        heavy = heavy_closing = NULL;
        for (s = w->backlog; s != NULL; s = s->bl_next) {
            session_t **best = s->state == SESSION_ST_CLOSING ? &heavy_closing : &heavy;
            if (*best == NULL || session__held(s) > session__held(*best))
                *best = s;
        }
        s = heavy ? heavy : heavy_closing;
        /* The sweep sheds only where the heaviest reader is; the send path sheds here. */
        if (s == NULL || (!all && session__held(s) < others))
            break;
        q -= session__held(s) < q ? session__held(s) : q;
        n++;
        if (heavy != NULL) {
            LOG_INFO("session %llx: %u output bytes held while the server is over "
                     "max_queued_mb: closing (SERVER_BUSY)",
                     (unsigned long long)s->sid, session__held(s));
            session_close(s, cim_Code_SERVER_BUSY,
                          "server output budget exhausted: reconnect and SYNC");
        } else {
            /* Every reader behind is already closing: cut one without waiting for its
             * BYE to get through. */
            session_abort(s, "over the server output budget while closing");
        }
    }
    return n;
}

int session_send_encoded(session_t *s, uint32_t type, const uint8_t *body, size_t len)
{
    worker_t *w = s->w;
    uint8_t *sealed = w->obuf + w->srv->conf->max_body;
    int rc;

    if (s->closed || s->state == SESSION_ST_CLOSING)
        return RC_ECLOSED;
    if (len > w->srv->conf->max_body)
        return RC_ETOOBIG;
    if (s->relay == RELAY_HOME)
        return relay_out(s, type, body, len); /* the edge seals */
    if (type != FT_BYE && over_budget(s, FRAME_HDR + len + FRAME_TAG) &&
        (session__shed(w, true), s->closed || s->state == SESSION_ST_CLOSING))
        return RC_EFULL; /* this session was the heaviest */
    if (type != FT_BYE &&
        s->out_bytes + s->cork_len + FRAME_HDR + len + FRAME_TAG > SESSION_OUT_MAX(s)) {
        /* A slow consumer. The frame is not sent (pushes never skip: the device catches
         * up with SYNC after reconnecting); BYE, the session's last frame, goes behind
         * the backlog and the sweep cuts the connection if it is not flushed within the
         * grace period. Checked before sealing, so the nonce counters stay in step. */
        LOG_RL(LOG_LVL_INFO, "session %llx: output over %u bytes, closing (SERVER_BUSY)",
               (unsigned long long)s->sid, SESSION_OUT_MAX(s));
        session_close(s, cim_Code_SERVER_BUSY, "too far behind: reconnect and SYNC");
        return RC_EFULL;
    }
    if ((rc = chan_seal(w->cc, &s->ch, type, body, len, sealed)) < 0) {
        session_abort(s, "seal failure");
        return rc;
    }
    /* chan_seal used tx_ctr and moved it on */
    return queue_bytes(s, sealed, (uint32_t)(FRAME_HDR + len + FRAME_TAG), s->ch.tx_ctr - 1);
}

/* Encode into the worker's plaintext buffer. */
static int encode(session_t *s, const pb_msgdesc_t *fields, const void *msg, size_t *len)
{
    pb_ostream_t os = pb_ostream_from_buffer(s->w->obuf, s->w->srv->conf->max_body);
    if (!pb_encode(&os, fields, msg)) {
        LOG_ERROR("session %llx: encoding failed: %s", (unsigned long long)s->sid,
                  PB_GET_ERROR(&os));
        return RC_ETOOBIG;
    }
    *len = os.bytes_written;
    return 0;
}

int session_send(session_t *s, uint32_t type, const pb_msgdesc_t *fields, const void *msg)
{
    size_t len;
    int rc;

    if (s->closed || s->state == SESSION_ST_CLOSING)
        return RC_ECLOSED;
    if ((rc = encode(s, fields, msg, &len)) < 0) {
        session_abort(s, "encode failure");
        return rc;
    }
    return session_send_encoded(s, type, s->w->obuf, len);
}

/* A LOGOUT_ACK is the last answer: the session closes once it is queued. */
static int send_answer(session_t *s, uint32_t type, const uint8_t *body, size_t len)
{
    int rc = session_send_encoded(s, type, body, len);
    if (rc == 0 && type == FT_LOGOUT_ACK)
        session_finish(s);
    return rc;
}

/* Keep an encoded answer (or push) until the store requests issued before it are
 * answered. */
static int defer(session_t *s, uint32_t type, const uint8_t *body, size_t len)
{
    reply_t *r;

    if (s->rq_bytes + len > SESSION_OUT_MAX(s)) {
        session_close(s, cim_Code_SERVER_BUSY, "too many answers waiting");
        return RC_EFULL;
    }
    r = mem_alloc(sizeof(*r) + len);
    r->next = NULL;
    r->after = s->async_issued;
    r->type = type;
    r->len = (uint32_t)len;
    r->request = false;
    memcpy(r->data, body, len);
    if (s->rq_tail)
        s->rq_tail->next = r;
    else
        s->rq_head = r;
    s->rq_tail = r;
    s->rq_bytes += r->len;
    charge(s, r->len);
    return 0;
}

int session__hold(session_t *s, uint32_t type, const uint8_t *body, size_t len)
{
    int rc = defer(s, type, body, len);
    if (rc == 0) {
        s->rq_tail->request = true;
        s->held++;
    }
    return rc;
}

int session_answer(session_t *s, uint32_t type, const pb_msgdesc_t *fields, const void *msg)
{
    size_t len;
    int rc;

    if (s->closed || s->state == SESSION_ST_CLOSING)
        return RC_ECLOSED;
    if ((rc = encode(s, fields, msg, &len)) < 0) {
        session_abort(s, "encode failure");
        return rc;
    }
    if (s->async_issued == s->async_done)
        return send_answer(s, type, s->w->obuf, len);
    /* Earlier requests are still with the store: this answer waits its turn (bounded
     * like the output queue). */
    return defer(s, type, s->w->obuf, len);
}

static void note_delivered(session_t *s, uint32_t type, const uint8_t *body, size_t len);

void session_push(session_t *s, uint32_t type, const blob_t *body)
{
    if (s->state != SESSION_ST_LIVE || s->closed)
        return;
    note_delivered(s, type, body->data, body->len);
    /* Registered for pushes before its LoginRsp: they follow the LoginRsp, in order, in
     * a list of their own (answers to requests pipelined after LOGIN wait for other
     * things; pushes must not wait behind them, or a later push would overtake). */
    if (s->login_pending) {
        reply_t *r;
        if (s->pq_bytes + body->len > SESSION_OUT_MAX(s)) {
            session_close(s, cim_Code_SERVER_BUSY, "too far behind: reconnect and SYNC");
            return;
        }
        r = mem_alloc(sizeof(*r) + body->len);
        r->next = NULL;
        r->after = 0;
        r->type = type;
        r->len = body->len;
        memcpy(r->data, body->data, body->len);
        if (s->pq_tail)
            s->pq_tail->next = r;
        else
            s->pq_head = r;
        s->pq_tail = r;
        s->pq_bytes += r->len;
        charge(s, r->len);
        return;
    }
    (void)session_send_encoded(s, type, body->data, body->len); /* failures close s */
}

/* A timeline entry reaches this connection (a PUSH): PUSH_ACK may go up to it. */
static void note_delivered(session_t *s, uint32_t type, const uint8_t *body, size_t len)
{
    uint64_t id = type == FT_PUSH ? message_id(body, len) : 0;
    if (id > s->delivered)
        s->delivered = id;
}

void session__release_pushes(session_t *s)
{
    reply_t *r;
    while ((r = s->pq_head) != NULL) {
        s->pq_head = r->next;
        if (s->pq_head == NULL)
            s->pq_tail = NULL;
        s->pq_bytes -= r->len;
        charge(s, -(int64_t)r->len);
        if (!s->closed && s->state != SESSION_ST_CLOSING)
            (void)session_send_encoded(s, r->type, r->data, r->len); /* failures close s */
        mem_free(r);
    }
}

static int dispatch(session_t *s, uint32_t type, const uint8_t *body, size_t len);

/* Run a held request now that what came before it is answered. Its own answer goes first
 * (sent, or deferred into the emptied queue); what was queued behind it goes back behind
 * that, and waits for any store request it issued. */
static int run_held(session_t *s, reply_t *r)
{
    reply_t *rest = s->rq_head, *e;
    uint32_t before = s->async_issued;
    int rc;

    s->rq_head = s->rq_tail = NULL;
    s->held--;
    rc = dispatch(s, r->type, r->data, r->len);
    if (rest != NULL) {
        if (s->rq_tail)
            s->rq_tail->next = rest;
        else
            s->rq_head = rest;
        for (e = rest; e != NULL; e = e->next) {
            if (s->async_issued != before && (int32_t)(e->after - s->async_issued) < 0)
                e->after = s->async_issued;
            s->rq_tail = e;
        }
    }
    return rc;
}

/* One store request was answered: send what waited for it and run the requests held
 * behind it, in order. */
static void async_done(session_t *s)
{
    reply_t *r;
    int rc;

    s->async_done++;
    while ((r = s->rq_head) != NULL && (int32_t)(s->async_done - r->after) >= 0) {
        s->rq_head = r->next;
        if (s->rq_head == NULL)
            s->rq_tail = NULL;
        s->rq_bytes -= r->len;
        charge(s, -(int64_t)r->len);
        rc = r->request ? run_held(s, r) : send_answer(s, r->type, r->data, r->len);
        mem_free(r);
        if (rc < 0 || s->closed || s->state == SESSION_ST_CLOSING)
            return;
    }
}

static void complete_send(session_t *s, store_send_t *req)
{
    cim_SendRsp rsp = cim_SendRsp_init_zero;

    if (cluster_is_enabled(s->w->srv->cluster) && s->xsends > 0)
        s->xsends--;
    if (req->transient && req->code == cim_Code_OK &&
        send_transient_route(s->w->srv, req, req->body, req->body_len, s->sid) < 0)
        LOG_RL(LOG_LVL_WARN, "cannot encode a transient message");

    rsp.req_id = req->req_id;
    rsp.code = (cim_Code)req->code;
    if (req->code == cim_Code_OK) {
        rsp.msg_id = req->msg_id;
        rsp.time_ms = req->time_ms;
    } else {
        /* Decided in the store, in its order: the group changed since the worker looked,
         * or the batch failed. */
        snprintf(rsp.reason, sizeof(rsp.reason), "%s",
                 req->reason[0] != '\0'            ? req->reason
                 : req->code == cim_Code_NOT_FOUND  ? "the group no longer exists"
                 : req->code == cim_Code_NOT_MEMBER ? "you are no longer a member of that group"
                                                    : "storage failure; the message was not stored");
    }
    memcpy(rsp.client_msg_id, req->cmid, sizeof(rsp.client_msg_id));
    mem_free(req);
    if (session_send(s, FT_SEND_ACK, cim_SendRsp_fields, &rsp) < 0)
        return;
    async_done(s);
}

void session_complete(session_t *s, store_req_t *req)
{
    if (s == NULL || s->closed || s->state == SESSION_ST_CLOSING) {
        mem_free(req);
        return;
    }
    if (req->kind == STORE_REQ_SEND) {
        complete_send(s, (store_send_t *)req);
    } else if (req->kind == STORE_REQ_OP) {
        if (cluster_is_enabled(s->w->srv->cluster) && s->xsends > 0)
            s->xsends--;
        session__op_done(s, (store_op_t *)req);
        if (!s->closed && s->state != SESSION_ST_CLOSING)
            async_done(s);
    } else if (req->kind == STORE_REQ_LOGIN) {
        session__login_done(s, (store_login_t *)req); /* sends the LoginRsp */
        if (!s->closed && s->state != SESSION_ST_CLOSING)
            async_done(s);
    } else if (req->kind == XONLINE_REQ) {
        if (s->xsends > 0)
            s->xsends--;
        session__contacts_done(s, (xonline_req_t *)req); /* sends the CONTACT_LIST_ACK */
        if (!s->closed && s->state != SESSION_ST_CLOSING)
            async_done(s);
    } else {
        mem_free(req);
    }
}

int session_reply(session_t *s, uint32_t type, uint32_t req_id, int code, const char *reason)
{
    cim_Result r = cim_Result_init_zero;
    r.req_id = req_id;
    r.code = (cim_Code)code;
    snprintf(r.reason, sizeof(r.reason), "%s", reason ? reason : "");
    return session_answer(s, type, cim_Result_fields, &r);
}

int session__fail(session_t *s, uint32_t type, uint32_t req_id, int code, const char *reason)
{
    return session_reply(s, type + 1, req_id, code, reason);
}

int session__post_op(session_t *s, store_op_t *op)
{
    cluster_t *cl = s->w->srv->cluster;
    int rc;

    op->worker = s->w->index;
    op->sid = s->sid;
    op->from_kind = s->kind;
    str_copy(op->app, sizeof(op->app), s->app);
    str_copy(op->user, sizeof(op->user), s->user);
    if ((rc = send_post(s->w->srv, &op->hdr)) < 0) {
        uint32_t type = op->type, req_id = op->req_id;
        mem_free(op);
        return session__fail(s, type, req_id, cim_Code_SERVER_BUSY, "server busy; retry later");
    }
    s->async_issued++;
    /* in a cluster answered by the cluster thread, maybe out of store order: what follows
     * waits */
    s->xsends += cluster_is_enabled(cl);
    return 0;
}

uint32_t session__req_id(const uint8_t *body, size_t len)
{
    cim_Req req = cim_Req_init_zero;
    pb_istream_t is = pb_istream_from_buffer(body, len);
    /* Req has only field 1; every other field of the real message is skipped, so this
     * succeeds whenever the body is well-formed protobuf, even past a bound (e.g. more
     * than 1000 users in a GroupUsersReq). */
    return pb_decode(&is, cim_Req_fields, &req) ? req.req_id : 0;
}

static int dispatch(session_t *s, uint32_t type, const uint8_t *body, size_t len)
{
    switch (type) {
    case FT_PING:
        return session__ping(s, body, len);
    case FT_LOGOUT:
        return session__logout(s, body, len);
    case FT_SEND:
        return session__send(s, body, len);
    case FT_PUSH_ACK:
        return session__push_ack(s, body, len);
    case FT_SYNC:
        return session__sync(s, body, len);
    case FT_GROUP_CREATE:
    case FT_GROUP_JOIN:
    case FT_GROUP_LEAVE:
    case FT_GROUP_ADD:
    case FT_GROUP_KICK:
    case FT_GROUP_DISMISS:
        return session__group(s, type, body, len);
    case FT_GROUP_MEMBERS:
    case FT_GROUP_LIST:
        return session__group_read(s, type, body, len);
    case FT_READ:
    case FT_RECALL:
    case FT_CONTACT_ADD:
    case FT_CONTACT_REMOVE:
    case FT_BLOCK:
    case FT_UNBLOCK:
        return session__conv_write(s, type, body, len);
    case FT_HISTORY:
    case FT_CONV_LIST:
    case FT_CONTACT_LIST:
        return session__conv_read(s, type, body, len);
    case FT_LOGIN:
        return session__fail(s, type, session__req_id(body, len), cim_Code_BAD_REQUEST,
                             "already logged in");
    default:
        /* on_frame lets only client-to-server types through, and each has a case. */
        return session__fail(s, type, session__req_id(body, len), cim_Code_BAD_REQUEST,
                             "unsupported request");
    }
}

/* Requests whose answer reads what the session's own earlier changes wrote. */
static bool reads_state(uint32_t type)
{
    return type == FT_SYNC || type == FT_HISTORY || type == FT_CONV_LIST ||
           type == FT_CONTACT_LIST || type == FT_GROUP_MEMBERS || type == FT_GROUP_LIST;
}

/* Requests run in order: a read arriving while the session's changes are still with the
 * store waits for them (it must see them), and once any request waits, every later one
 * waits behind it. PUSH_ACK has no answer and only moves the cursor forward: it runs at
 * once. */
static int handle(session_t *s, uint32_t type, const uint8_t *body, size_t len)
{
    if (type != FT_PUSH_ACK &&
        (s->held > 0 || s->xsends > 0 || (reads_state(type) && s->async_issued != s->async_done)))
        return session__hold(s, type, body, len);
    return dispatch(s, type, body, len);
}

static int on_frame(void *ctx, uint32_t type, uint8_t *frame, uint32_t len)
{
    session_t *s = ctx;
    ctr_add(&s->w->stats.frames_in, 1);
    int rc;

    if (s->closed || s->state == SESSION_ST_CLOSING)
        return RC_ECLOSED;
    if (s->state == SESSION_ST_HELLO)
        return session__hello(s, type, frame, len);

    /* Ordering and direction are judged on the header, before opening: a client that
     * repeats the handshake or sends a server's frame type is out of protocol. */
    if (type == FT_HELLO || type == FT_HELLO_ACK) {
        session_close(s, cim_Code_PROTOCOL_ERROR, "handshake frame after the handshake");
        return RC_ECLOSED;
    }
    if (!frame_type_from_client(type)) {
        session_close(s, cim_Code_PROTOCOL_ERROR, "server-to-client frame type from client");
        return RC_ECLOSED;
    }
    if (chan_open(s->w->cc, &s->ch, frame, len) < 0) {
        session_abort(s, "frame failed to open");
        return RC_ECLOSED;
    }
    if (s->state == SESSION_ST_LOGIN) {
        if (type != FT_LOGIN) {
            session_close(s, cim_Code_UNAUTHORIZED, "the first frame must be LOGIN");
            return RC_ECLOSED;
        }
        rc = session__login(s, frame + FRAME_HDR, len - FRAME_HDR - FRAME_TAG);
    } else if (s->relay == RELAY_EDGE) {
        if (!s->relay_pending) { /* until the LoginRsp, the login timeout runs */
            s->since_ms = worker_now(s->w);
            worker__list_move(s->w, s, &s->w->live);
        }
        rc = relay_forward(s, type, frame + FRAME_HDR, len - FRAME_HDR - FRAME_TAG);
    } else {
        s->since_ms = worker_now(s->w);
        worker__list_move(s->w, s, &s->w->live);
        rc = handle(s, type, frame + FRAME_HDR, len - FRAME_HDR - FRAME_TAG);
    }
    if (s->closed || s->state == SESSION_ST_CLOSING)
        return RC_ECLOSED;
    return rc;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    session_t *s = h->data;
    worker_t *w = s->w;
    (void)suggested;
    /* One buffer per loop: reads are handled to completion before the next on_alloc. */
    w->rbuf_busy = true;
    *buf = uv_buf_init((char *)w->rbuf, (unsigned)w->rbuf_len);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    session_t *s = st->data;

    s->w->rbuf_busy = false;
    if (n == 0)
        return;
    if (n < 0) {
        session_abort(s, n == UV_EOF ? "peer closed" : uv_strerror((int)n));
        return;
    }
    ctr_add(&s->w->stats.bytes_in, (uint64_t)n);
    session_feed(s, (uint8_t *)buf->base, (size_t)n);
}

void session_feed(session_t *s, uint8_t *data, size_t n)
{
    int rc;

    if (s->closed || s->state == SESSION_ST_CLOSING)
        return;
    rc = frame_rd_feed(&s->rd, data, n, s->max_len, on_frame, s);
    if (rc == 0 || rc == RC_ECLOSED)
        return;
    if (s->closed || s->state == SESSION_ST_CLOSING)
        return;
    if (rc == RC_EPROTO || rc == RC_ETOOBIG)
        session_close(s, cim_Code_PROTOCOL_ERROR,
                      rc == RC_ETOOBIG ? "frame length over the limit"
                                       : "bad frame length or unknown frame type");
    else if (s->state == SESSION_ST_HELLO)
        session_abort(s, rc_str(rc));
    else
        session_close(s, cim_Code_INTERNAL, rc_str(rc));
}

void session__relay_in(session_t *s, uint32_t type, const uint8_t *body, size_t len)
{
    ctr_add(&s->w->stats.frames_in, 1);
    if (s->closed || s->state != SESSION_ST_LIVE)
        return;
    /* The edge enforces the client's heartbeat; the frames it forwards (PING included)
     * keep this side alive the same way. */
    s->since_ms = worker_now(s->w);
    worker__list_move(s->w, s, &s->w->live);
    (void)handle(s, type, body, len); /* failures close s */
}

/* The code of a LoginRsp body (field 2), or -1 when it does not decode. */
static int login_code(const uint8_t *body, size_t len)
{
    cim_LoginRsp rsp = cim_LoginRsp_init_zero;
    pb_istream_t is = pb_istream_from_buffer(body, len);
    return pb_decode(&is, cim_LoginRsp_fields, &rsp) ? (int)rsp.code : -1;
}

void session__relay_out(session_t *s, uint32_t type, const uint8_t *body, size_t len)
{
    int rc;

    if (s->closed || s->state == SESSION_ST_CLOSING)
        return;
    if (type == FT_LOGIN_ACK && s->relay_pending && login_code(body, len) == cim_Code_OK) {
        char peer[PEER_ADDR_STRLEN];
        s->relay_pending = false;
        s->since_ms = worker_now(s->w);
        worker__list_move(s->w, s, &s->w->live);
        LOG_INFO("session %llx: %s/%s logged in from %s on device %s, served by node %u",
                 (unsigned long long)s->sid, s->app, s->user, peer_addr_str(&s->peer, peer),
                 s->device, s->relay_node);
    }
    if (type == FT_PUSH || type == FT_EVENT)
        ctr_add(&s->w->stats.pushes, 1);
    rc = session_send_encoded(s, type, body, len);
    if (rc == RC_ETOOBIG) {
        session_close(s, cim_Code_INTERNAL, "a frame from the home node is over max_body");
        return;
    }
    if (rc == 0 && type == FT_BYE) {
        /* The home's last word (kick, timeout, shutdown, ...): written, then closed. */
        s->relay_gone = true;
        log_close(s, "closing (BYE from its home node)", "");
        flush_and_close(s);
    }
}

void session__relay_end(session_t *s, const char *why)
{
    s->relay_gone = true;
    if (s->closed || s->state == SESSION_ST_CLOSING)
        return;
    log_close(s, "closing", why);
    flush_and_close(s);
}

/* A new session of worker @p w (state HELLO), not yet in its table. */
static session_t *session_alloc(worker_t *w, const peer_addr_t *peer)
{
    session_t *s = mem_calloc(sizeof(*s));

    s->w = w;
    s->peer = *peer;
    s->max_len = FRAME_HANDSHAKE_MAX;
    s->state = SESSION_ST_HELLO;
    frame_rd_init(&s->rd);
    return s;
}

/* Give @p s its id and put it on the pending list (the login timeout starts now). */
static void session_enlist(session_t *s)
{
    worker__add(s->w, s);
    s->since_ms = worker_now(s->w);
    worker__list_move(s->w, s, &s->w->pending);
}

session_t *session_open_remote(worker_t *w, const peer_addr_t *peer, uint32_t edge,
                               uint64_t edge_sid)
{
    session_t *s = session_alloc(w, peer);
    char addr[PEER_ADDR_STRLEN];

    s->relay = RELAY_HOME;
    s->relay_node = edge;
    s->relay_sid = edge_sid;
    s->state = SESSION_ST_LOGIN;
    session_enlist(s);
    relay__map_add(w, s);
    LOG_INFO("session %llx: remote session of %s at node %u (session %llx there)",
             (unsigned long long)s->sid, peer_addr_str(peer, addr), edge,
             (unsigned long long)edge_sid);
    return s;
}

session_t *session_open_ws(worker_t *w, const peer_addr_t *peer)
{
    session_t *s = session_alloc(w, peer);
    char addr[PEER_ADDR_STRLEN];

    s->is_ws = true;
    session_enlist(s);
    LOG_INFO("session %llx: WebSocket connection from %s", (unsigned long long)s->sid,
             peer_addr_str(peer, addr));
    return s;
}

int session_open(worker_t *w, int fd, const peer_addr_t *peer)
{
    session_t *s = session_alloc(w, peer);
    char addr[PEER_ADDR_STRLEN];
    int rc;

    if ((rc = uv_tcp_init(&w->loop, &s->tcp)) < 0) {
        close(fd);
        acceptor_conn_closed(w->srv->acceptor, peer);
        mem_free(s);
        return rc;
    }
    s->tcp.data = s;
    session_enlist(s);
    LOG_INFO("session %llx: connection from %s", (unsigned long long)s->sid,
             peer_addr_str(peer, addr));
    if ((rc = uv_tcp_open(&s->tcp, fd)) < 0) {
        close(fd);
        close_handle(s);
        return rc;
    }
    if ((rc = uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read)) < 0) {
        close_handle(s);
        return rc;
    }
    s->reading = true;
    return 0;
}
