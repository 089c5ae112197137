/* ws: the WebSocket endpoint — HTTP on the workers' loops through libh2o, frames through
 * wslay, sessions through session.c (see ws.h). */
#include "actors/ws.h"

#define H2O_USE_LIBUV 1
#include <h2o.h>
#include <h2o/websocket.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "actors/http.h"
#include "actors/session.h"
#include "actors/web_files.h"
#include "actors/worker.h"
#include "cim.pb.h"
#include "core/chan.h"
#include "core/frame.h"
#include "core/kv.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rc.h"
#include "core/token.h"
#include "core/version.h"

#define WS_HTTP_IDLE_MS 3000   /* keep-alive of plain HTTP requests (bounds a stop's wait) */
#define DEV_TOKEN_TTL 86400

struct ws_global {
    server_t *srv;
    h2o_globalconf_t config;
};

typedef struct ws_ctx {
    h2o_context_t ctx;
    h2o_accept_ctx_t accept;
    worker_t *w;
    uint32_t conns;    /* TCP connections of ws_listen open on this worker */
    bool open;         /* ctx initialised and not yet disposed */
    uv_check_t check;  /* each loop turn: send the close frames that waited */
    session_t *closing; /* sessions whose close frame waits (session.ws_close_next) */
} ws_ctx_t;

/* One TCP connection from ws_listen, as h2o's socket owns it. */
typedef struct ws_tcp {
    uv_tcp_t tcp;
    ws_ctx_t *c;
    peer_addr_t peer;
} ws_tcp_t;

typedef struct ws_handler {
    h2o_handler_t super;
    ws_global_t *g;
} ws_handler_t;

/* h2o's own send callback, wrapped to count what leaves (the same for every connection). */
static _Atomic(wslay_event_send_callback) orig_send;

/* ---- answers -------------------------------------------------------------------------- */

static int refuse(h2o_req_t *req, int status, const char *why)
{
    return http_send_json(req, status, json_pack("{s:s}", "reason", why));
}

/* ---- WebSocket sessions --------------------------------------------------------------- */

static ssize_t on_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    h2o_websocket_conn_t *conn = user;
    wslay_event_send_callback send = atomic_load_explicit(&orig_send, memory_order_relaxed);
    ssize_t n = send(ctx, data, len, flags, user);
    if (n > 0 && conn->data != NULL)
        session__ws_out(conn->data, -(int64_t)n);
    return n;
}

static void on_message(h2o_websocket_conn_t *conn, const struct wslay_event_on_msg_recv_arg *arg)
{
    session_t *s = conn->data;
    uint32_t flen = 0, ftype;
    worker_t *w;
    uint8_t *buf;

    if (arg == NULL) { /* closed: by the peer, an error, or the closing handshake's end */
        conn->data = NULL;
        h2o_websocket_close(conn);
        if (s != NULL) {
            s->ws = NULL;
            session_abort(s, "connection closed");
        }
        return;
    }
    if (s == NULL || s->closed || s->state == SESSION_ST_CLOSING)
        return; /* input after the session ended is dropped */
    if (arg->opcode == WSLAY_TEXT_FRAME) {
        session__ws_fail(s, WSLAY_CODE_UNSUPPORTED_DATA, "a text message (binary only)");
        return;
    }
    if (arg->opcode != WSLAY_BINARY_FRAME)
        return; /* ping, pong, close: wslay's */
    if (arg->msg_length >= FRAME_HDR)
        frame_hdr_read(arg->msg, &flen, &ftype);
    if (arg->msg_length < FRAME_HDR || flen != arg->msg_length) {
        s->ws_in_cb = true;
        session_close(s, cim_Code_PROTOCOL_ERROR, "a WebSocket message must be one frame");
        s->ws_in_cb = false;
        return;
    }
    /* Frames are opened in place: the session gets a writable copy (the worker's read
     * buffer, free here: only libuv reads of TCP sessions use it). */
    w = s->w;
    buf = !w->rbuf_busy && arg->msg_length <= w->rbuf_len ? w->rbuf
                                                          : mem_alloc(arg->msg_length);
    memcpy(buf, arg->msg, arg->msg_length);
    ctr_add(&w->stats.bytes_in, arg->msg_length);
    s->ws_in_cb = true;
    session_feed(s, buf, arg->msg_length);
    s->ws_in_cb = false;
    if (buf != w->rbuf)
        mem_free(buf);
}

int ws_write(session_t *s, const uint8_t *data, uint32_t len)
{
    h2o_websocket_conn_t *conn = s->ws;
    uint32_t off = 0;

    if (conn == NULL)
        return 0; /* gone: the session is closing */
    while (off + FRAME_HDR <= len) {
        uint32_t flen, type;
        frame_hdr_read(data + off, &flen, &type);
        struct wslay_event_msg msg = {WSLAY_BINARY_FRAME, data + off, flen};
        if (flen < FRAME_HDR || flen > len - off ||
            wslay_event_queue_msg(conn->ws_ctx, &msg) != 0)
            break; /* after a close was queued: nothing more goes out */
        session__ws_out(s, flen);
        off += flen;
    }
    /* Inside a callback, h2o_websocket_proceed's own loop sends it. */
    if (!s->ws_in_cb && conn->sock != NULL)
        h2o_websocket_proceed(conn); /* may end the connection (on_message(NULL)) */
    return 0;
}

/* Queue the close frame now. wslay sends control frames ahead of data messages not yet
 * started, and nothing after a close: so only once every message before it (the BYE) is
 * out. The server then closes once its close frame is written, not waiting for the peer's
 * answer (RFC 6455 §7.1.1 lets it): a peer that never answers costs no timeout, and a
 * shutdown is as quick as over TCP. */
static void close_now(session_t *s)
{
    h2o_websocket_conn_t *conn = s->ws;
    static const char reason[] = "";

    (void)wslay_event_queue_close(conn->ws_ctx, s->ws_close_code, (const uint8_t *)reason, 0);
    wslay_event_shutdown_read(conn->ws_ctx);
    if (conn->sock != NULL)
        h2o_websocket_proceed(conn); /* may end the connection (on_message(NULL)) */
}

static void unlist(ws_ctx_t *c, session_t *s)
{
    for (session_t **p = &c->closing; *p != NULL; p = &(*p)->ws_close_next)
        if (*p == s) {
            *p = s->ws_close_next;
            break;
        }
    s->ws_closing = false;
}

void ws_close(session_t *s, int code, const char *reason)
{
    ws_ctx_t *c = s->w->ws;
    (void)reason; /* the BYE before it says why; the close frame carries the code */

    if (s->ws == NULL || s->ws_closing)
        return;
    s->ws_close_code = (uint16_t)code;
    if (!s->ws_in_cb && wslay_event_get_queued_msg_count(s->ws->ws_ctx) == 0) {
        close_now(s);
        return;
    }
    s->ws_closing = true;
    s->ws_close_next = c->closing;
    c->closing = s;
}

/* Each loop turn: the sessions whose messages have all gone out get their close frame. */
static void on_check(uv_check_t *h)
{
    ws_ctx_t *c = h->data;
    session_t *s = c->closing, *next;

    for (; s != NULL; s = next) {
        next = s->ws_close_next;
        if (s->ws == NULL) {
            unlist(c, s);
        } else if (wslay_event_get_queued_msg_count(s->ws->ws_ctx) == 0) {
            unlist(c, s);
            close_now(s);
        }
    }
}

void ws_release(session_t *s)
{
    h2o_websocket_conn_t *conn = s->ws;
    if (s->ws_closing)
        unlist(s->w->ws, s);
    if (conn == NULL)
        return;
    s->ws = NULL;
    conn->data = NULL;
    h2o_websocket_close(conn);
}

/* ---- HTTP ----------------------------------------------------------------------------- */

static ws_ctx_t *ctx_of(h2o_req_t *req)
{
    return container_of(req->conn->ctx, ws_ctx_t, ctx);
}

/* Does a comma-separated header value list @p item (case-insensitive, trimmed)? */
static bool header_lists(const h2o_req_t *req, const char *name, const char *item)
{
    size_t il = strlen(item);
    for (ssize_t i = -1; (i = h2o_find_header_by_str(&req->headers, name, strlen(name), i)) != -1;) {
        const h2o_iovec_t *v = &req->headers.entries[i].value;
        size_t p = 0;
        while (p < v->len) {
            size_t e = p;
            while (e < v->len && v->base[e] != ',')
                e++;
            size_t a = p, b = e;
            while (a < b && (v->base[a] == ' ' || v->base[a] == '\t'))
                a++;
            while (b > a && (v->base[b - 1] == ' ' || v->base[b - 1] == '\t'))
                b--;
            if (b - a == il && strncasecmp(v->base + a, item, il) == 0)
                return true;
            p = e + 1;
        }
    }
    return false;
}

/* Is the request's Origin allowed? No Origin (not a browser): yes. ws_origins empty: the
 * origin of the page must be this very host (http or https: behind a TLS proxy). "*": any.
 * Else the Origin must be one of the listed. */
static bool origin_ok(const conf_t *conf, const h2o_req_t *req)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("origin"), -1);
    const h2o_iovec_t *o;
    const char *list = conf->ws_origins;

    if (i < 0)
        return true;
    o = &req->headers.entries[i].value;
    if (strcmp(list, "*") == 0)
        return true;
    if (list[0] == '\0') {
        const h2o_iovec_t *host = &req->authority;
        for (int k = 0; k < 2; k++) {
            const char *scheme = k ? "https://" : "http://";
            size_t sl = strlen(scheme);
            if (o->len == sl + host->len && strncasecmp(o->base, scheme, sl) == 0 &&
                strncasecmp(o->base + sl, host->base, host->len) == 0)
                return true;
        }
        return false;
    }
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        while (n > 0 && *p == ' ')
            p++, n--;
        while (n > 0 && p[n - 1] == ' ')
            n--;
        if (n == o->len && strncasecmp(p, o->base, n) == 0)
            return true;
        p = e ? e + 1 : p + strlen(p);
    }
    return false;
}

static int on_upgrade(ws_ctx_t *c, h2o_req_t *req)
{
    server_t *srv = c->w->srv;
    const char *key = NULL;
    struct sockaddr_storage ss;
    h2o_websocket_conn_t *conn;
    struct wslay_event_callbacks cbs;
    peer_addr_t peer;
    bool offered;
    session_t *s;

    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")))
        return refuse(req, 405, "GET /ws upgrades to a WebSocket");
    if (h2o_is_websocket_handshake(req, &key) != 0 || key == NULL)
        return refuse(req, 400, "a WebSocket upgrade is required (Upgrade: websocket, "
                                "Sec-WebSocket-Key)");
    /* PROTOCOL.md §1 names no subprotocol: a client that offers none is served as one
     * written from it; one that offers some must offer cim.v1 (docs/PROTOCOL-NOTES.md). */
    offered = h2o_find_header_by_str(&req->headers, H2O_STRLIT("sec-websocket-protocol"), -1) >= 0;
    if (offered && !header_lists(req, "sec-websocket-protocol", WS_SUBPROTOCOL))
        return refuse(req, 400, "offer the subprotocol " WS_SUBPROTOCOL);
    if (!origin_ok(srv->conf, req))
        return refuse(req, 403, "this Origin may not open /ws (ws_origins)");
    if (atomic_load(&srv->stopping) || c->w->stopping)
        return refuse(req, 503, "shutting down");
    memset(&ss, 0, sizeof(ss));
    if (req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss) == 0)
        memset(&ss, 0, sizeof(ss));
    peer_addr_from(&ss, &peer);
    s = session_open_ws(c->w, &peer);
    if (offered)
        h2o_add_header_by_str(&req->pool, &req->res.headers,
                              H2O_STRLIT("sec-websocket-protocol"), 0, NULL,
                              H2O_STRLIT(WS_SUBPROTOCOL));
    conn = h2o_upgrade_to_websocket(req, key, s, on_message);
    s->ws = conn;
    wslay_event_config_set_max_recv_msg_length(conn->ws_ctx,
                                               FRAME_HDR + srv->conf->max_body + FRAME_TAG);
    cbs = conn->ws_callbacks;
    atomic_store_explicit(&orig_send, cbs.send_callback, memory_order_relaxed);
    cbs.send_callback = on_send;
    wslay_event_config_set_callbacks(conn->ws_ctx, &cbs);
    return 0;
}

static int on_config(ws_ctx_t *c, h2o_req_t *req)
{
    server_t *srv = c->w->srv;
    char hex[2 * CHAN_KEY + 1];

    chan_hex(srv->identity_pub, hex);
    return http_send_json(req, 200, json_pack("{s:s, s:s, s:s, s:b, s:I, s:I, s:s}", "key", hex, "ws_path",
                                 "/ws", "subprotocol", WS_SUBPROTOCOL, "dev_tokens",
                                 srv->conf->dev_tokens, "max_body",
                                 (json_int_t)srv->conf->max_body, "heartbeat_s",
                                 (json_int_t)srv->conf->heartbeat_s, "version", cim_version));
}

/* The value of query parameter @p name (percent-decoded into @p out). @return true when
 * present and it fits. */
static bool query_param(const h2o_req_t *req, const char *name, char *out, size_t outlen)
{
    const char *q, *end;
    size_t nl = strlen(name);

    if (req->query_at == SIZE_MAX)
        return false;
    q = req->path.base + req->query_at + 1;
    end = req->path.base + req->path.len;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *e = amp ? amp : end;
        if ((size_t)(e - q) > nl && strncmp(q, name, nl) == 0 && q[nl] == '=') {
            size_t o = 0;
            for (const char *p = q + nl + 1; p < e; p++) {
                int ch = (unsigned char)*p;
                if (ch == '%' && e - p >= 3 && OPENSSL_hexchar2int((unsigned char)p[1]) >= 0 &&
                    OPENSSL_hexchar2int((unsigned char)p[2]) >= 0) {
                    ch = OPENSSL_hexchar2int((unsigned char)p[1]) << 4 |
                         OPENSSL_hexchar2int((unsigned char)p[2]);
                    p += 2;
                } else if (ch == '+') {
                    ch = ' ';
                }
                if (o + 1 >= outlen || ch == 0)
                    return false;
                out[o++] = (char)ch;
            }
            out[o] = '\0';
            return true;
        }
        q = e + 1;
    }
    return false;
}

/* GET /dev/token?user=U[&app=A]: development only (dev_tokens). */
static int on_dev_token(ws_ctx_t *c, h2o_req_t *req)
{
    server_t *srv = c->w->srv;
    char user[KV_ID_MAX + 2], app[KV_ID_MAX + 2] = "default", tok[TOKEN_MAX];
    uint8_t secret[TOKEN_SECRET];
    kv_txn_t *txn = NULL;
    int64_t exp = (int64_t)time(NULL) + DEV_TOKEN_TTL;
    int rc;

    if (!srv->conf->dev_tokens)
        return refuse(req, 404, "no such resource");
    if (!query_param(req, "user", user, sizeof(user)) || !kv_id_valid(user) ||
        (query_param(req, "app", app, sizeof(app)) && !kv_id_valid(app)))
        return refuse(req, 400, "give ?user=ID (and optionally &app=ID)");
    if ((rc = kv_begin(srv->kv, KV_READ, &txn)) == 0) {
        rc = kv_app_get(txn, app, secret);
        kv_abort(txn);
    }
    if (rc == RC_ENOTFOUND)
        return refuse(req, 404, "no such app");
    if (rc < 0 || token_mint(secret, app, user, exp, tok, sizeof(tok)) < 0) {
        OPENSSL_cleanse(secret, sizeof(secret));
        return refuse(req, 500, "cannot mint a token");
    }
    OPENSSL_cleanse(secret, sizeof(secret));
    LOG_INFO("ws: development token minted for %s/%s", app, user);
    return http_send_json(req, 200, json_pack("{s:s, s:s, s:s, s:I}", "app", app, "user", user, "token", tok,
                                 "expires_s", (json_int_t)exp));
}

/* The page and its scripts (web_files.c): GET or HEAD, with an ETag so a reload costs a
 * 304, and headers that keep the page to its own origin. @return 0, or -1 (no such file). */
static int on_file(h2o_req_t *req, const h2o_iovec_t *p)
{
    /* At function scope: a compound literal inside the if would die with the if's block,
     * leaving p dangling (at -O2 "/" then answered 404). */
    const h2o_iovec_t index_path = {H2O_STRLIT("/index.html")};
    const web_file_t *f = web_files;
    char etag[40];
    uint64_t h = 14695981039346656037ULL;
    ssize_t i;

    if (h2o_memis(p->base, p->len, H2O_STRLIT("/")))
        p = &index_path;
    for (; f->path != NULL; f++)
        if (h2o_memis(p->base, p->len, f->path, strlen(f->path)))
            break;
    if (f->path == NULL)
        return -1;
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) &&
        !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")))
        return refuse(req, 405, "GET only");
    for (size_t k = 0; k < f->len; k++)
        h = (h ^ f->data[k]) * 1099511628211ULL;
    snprintf(etag, sizeof(etag), "\"%016llx\"", (unsigned long long)h);
    /* h2o keeps header values by reference: the ETag goes in the request's pool */
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ETAG, NULL,
                   h2o_strdup(&req->pool, etag, SIZE_MAX).base, strlen(etag));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-content-type-options"), 0,
                          NULL, H2O_STRLIT("nosniff"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("referrer-policy"), 0, NULL,
                          H2O_STRLIT("no-referrer"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("content-security-policy"),
                          0, NULL,
                          H2O_STRLIT("default-src 'self'; connect-src 'self' ws: wss:; "
                                     "img-src 'self' data: blob:; frame-ancestors 'none'; "
                                     "base-uri 'none'; form-action 'none'"));
    i = h2o_find_header(&req->headers, H2O_TOKEN_IF_NONE_MATCH, -1);
    if (i >= 0 && h2o_memis(req->headers.entries[i].value.base, req->headers.entries[i].value.len,
                            etag, strlen(etag))) {
        req->res.status = 304;
        req->res.reason = "Not Modified";
        h2o_send_inline(req, NULL, 0);
        return 0;
    }
    return http_send(req, 200, f->type, "no-cache", (const char *)f->data, f->len);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    ws_ctx_t *c = ctx_of(req);
    const h2o_iovec_t *p = &req->path_normalized;
    (void)self;

    if (h2o_memis(p->base, p->len, H2O_STRLIT("/ws")))
        return on_upgrade(c, req);
    if (h2o_memis(p->base, p->len, H2O_STRLIT("/config.json")))
        return on_config(c, req);
    if (h2o_memis(p->base, p->len, H2O_STRLIT("/dev/token")))
        return on_dev_token(c, req);
    if (on_file(req, p) == 0)
        return 0;
    return refuse(req, 404, "no such resource");
}

/* ---- connections and contexts --------------------------------------------------------- */

static void on_tcp_closed(uv_handle_t *h)
{
    ws_tcp_t *t = container_of((uv_tcp_t *)h, ws_tcp_t, tcp);
    worker_t *w = t->c->w;

    acceptor_conn_closed(w->srv->acceptor, &t->peer);
    t->c->conns--;
    mem_free(t);
    worker__maybe_finish(w);
}

void ws_adopt(worker_t *w, int fd, const peer_addr_t *peer)
{
    ws_ctx_t *c = w->ws;
    ws_tcp_t *t;
    h2o_socket_t *sock;

    if (c == NULL || !c->open || w->stopping) {
        close(fd);
        acceptor_conn_closed(w->srv->acceptor, peer);
        return;
    }
    t = mem_calloc(sizeof(*t));
    t->c = c;
    t->peer = *peer;
    if (uv_tcp_init(&w->loop, &t->tcp) < 0) {
        close(fd);
        acceptor_conn_closed(w->srv->acceptor, peer);
        mem_free(t);
        return;
    }
    c->conns++;
    if (uv_tcp_open(&t->tcp, fd) < 0) {
        close(fd);
        uv_close((uv_handle_t *)&t->tcp, on_tcp_closed);
        return;
    }
    sock = h2o_uv_socket_create((uv_stream_t *)&t->tcp, on_tcp_closed);
    h2o_accept(&c->accept, sock);
}

int ws_global_new(server_t *srv, ws_global_t **out)
{
    ws_global_t *g = mem_calloc(sizeof(*g));
    ws_handler_t *hd;

    g->srv = srv;
    /* no request here has a body; idle keep-alive ends soon (it bounds a stop's wait) */
    hd = (ws_handler_t *)http_config(&g->config, sizeof(*hd), on_req, 64 * 1024,
                                     WS_HTTP_IDLE_MS);
    hd->g = g;
    if (srv->conf->dev_tokens)
        LOG_WARN("dev_tokens is on: GET /dev/token on %s mints a token for any user; never "
                 "in production", srv->conf->ws_listen);
    *out = g;
    return 0;
}

void ws_global_free(ws_global_t *g)
{
    if (g == NULL)
        return;
    h2o_config_dispose(&g->config);
    mem_free(g);
}

int ws_worker_open(worker_t *w)
{
    ws_global_t *g = w->srv->ws;
    ws_ctx_t *c;

    if (g == NULL)
        return 0;
    c = mem_calloc(sizeof(*c));
    c->w = w;
    h2o_context_init(&c->ctx, &w->loop, &g->config);
    c->accept.ctx = &c->ctx;
    c->accept.hosts = g->config.hosts;
    c->open = true;
    w->ws = c;
    uv_check_init(&w->loop, &c->check);
    c->check.data = c;
    return uv_check_start(&c->check, on_check);
}

bool ws_worker_idle(const worker_t *w)
{
    return w->ws == NULL || w->ws->conns == 0;
}

static void on_check_closed(uv_handle_t *h)
{
    mem_free(h->data); /* the ws_ctx, its context disposed */
}

void ws_worker_close(worker_t *w)
{
    ws_ctx_t *c = w->ws;
    if (c == NULL || !c->open)
        return;
    c->open = false;
    h2o_context_dispose(&c->ctx);
    w->ws = NULL;
    uv_close((uv_handle_t *)&c->check, on_check_closed);
}
