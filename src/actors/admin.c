/* admin: the admin thread, its listener and the HTTP plumbing around the handlers
 * (docs/ADMIN-API.md). */
#include "actors/admin.h"
#include "actors/admin_int.h"
#include "actors/admin_parse.h"
#include "actors/http.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>

#include "actors/cluster.h"
#include "actors/router.h"
#include "actors/send.h"
#include "actors/worker.h"
#include "cim.pb.h"
#include "core/conf.h"
#include "core/kv.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rc.h"
#include "core/token.h"

#define ADMIN_DRAIN_MS 1000 /* how long a stop waits for answers in flight */
#define ROUTE_MAX 256       /* sessions of one user kicked at once */

typedef struct admin_handler {
    h2o_handler_t super;
    admin_t *a;
} admin_handler_t;

/* Lives in an HTTP request's memory pool: when h2o frees the pool (the answer is sent or
 * the client went away), the call waiting for the store forgets the request. */
typedef struct admin_link {
    admin_call_t *call;
} admin_link_t;

/* ---- answers -------------------------------------------------------------------------- */

int admin_text(h2o_req_t *req, int status, const char *content_type, const char *text,
               size_t len)
{
    return http_send(req, status, content_type, "no-store", text, len);
}

int admin_json(h2o_req_t *req, int status, json_t *body)
{
    return http_send_json(req, status, body);
}

int admin_error(h2o_req_t *req, int status, const char *code, const char *fmt, ...)
{
    char reason[256];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    return admin_json(req, status, json_pack("{s:s, s:s}", "code", code, "reason", reason));
}

int admin_refuse(h2o_req_t *req, int code, const char *reason)
{
    int status;
    switch (code) {
    case cim_Code_BAD_REQUEST: status = 400; break;
    case cim_Code_UNAUTHORIZED: status = 401; break;
    case cim_Code_FORBIDDEN:
    case cim_Code_BLOCKED:
    case cim_Code_NOT_MEMBER:
    case cim_Code_RECALL_WINDOW_PASSED: status = 403; break;
    case cim_Code_NOT_FOUND: status = 404; break;
    case cim_Code_CONFLICT: status = 409; break;
    case cim_Code_TOO_LARGE: status = 413; break;
    case cim_Code_RATE_LIMITED: status = 429; break;
    case cim_Code_SERVER_BUSY:
    case cim_Code_SHUTTING_DOWN: status = 503; break;
    default: status = 500; break;
    }
    return admin_error(req, status, cim_Code_name((cim_Code)code), "%s", reason);
}

bool admin_method(const h2o_req_t *req, const char *m)
{
    return h2o_memis(req->method.base, req->method.len, m, strlen(m));
}

json_t *admin_body(h2o_req_t *req, bool empty_ok)
{
    json_error_t err;
    json_t *j;

    if (req->entity.base == NULL || req->entity.len == 0) {
        if (empty_ok)
            return json_object();
        (void)admin_error(req, 400, "BAD_REQUEST", "a JSON object body is required");
        return NULL;
    }
    j = json_loadb(req->entity.base, req->entity.len, JSON_REJECT_DUPLICATES, &err);
    if (j == NULL) {
        (void)admin_error(req, 400, "BAD_REQUEST", "malformed JSON: %s (line %d column %d)",
                          err.text, err.line, err.column);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        (void)admin_error(req, 400, "BAD_REQUEST", "the body must be a JSON object");
        return NULL;
    }
    return j;
}

/* ---- calls to the store --------------------------------------------------------------- */

static void on_link_gone(void *p)
{
    admin_link_t *l = p;
    if (l->call != NULL) {
        l->call->req = NULL;
        l->call->link = NULL;
    }
}

/* On the store's thread, after the commit: hand the request to the admin thread. */
static void on_store_done(store_req_t *q)
{
    admin_call_t *c = q->done_arg;
    if (mbox_send_force(&c->a->box, &q->node) != 0) {
        /* The admin thread is gone (it stops after the store: not expected). */
        mem_free(q);
    }
}

int admin_call(admin_t *a, h2o_req_t *req, store_req_t *q, admin_finish_fn finish,
               const char *app, const char *user)
{
    admin_call_t *c = mem_calloc(sizeof(*c));
    admin_link_t *l;
    int rc;

    c->a = a;
    c->req = req;
    c->finish = finish;
    snprintf(c->app, sizeof(c->app), "%s", app);
    snprintf(c->user, sizeof(c->user), "%s", user ? user : "");
    q->done = on_store_done;
    q->done_arg = c;
    if ((rc = send_post(a->srv, q)) < 0) {
        mem_free(q);
        mem_free(c);
        return admin_refuse(req, rc == RC_EFULL ? cim_Code_SERVER_BUSY : cim_Code_SHUTTING_DOWN,
                            rc == RC_EFULL ? "server busy; retry later" : "shutting down");
    }
    l = h2o_mem_alloc_shared(&req->pool, sizeof(*l), on_link_gone);
    l->call = c;
    c->link = l;
    a->calls++;
    return 0;
}

static void on_wake(mbox_t *box)
{
    admin_t *a = box->data;
    mbox_node_t *node;

    while ((node = mbox_pop(box)) != NULL) {
        store_req_t *q = container_of(node, store_req_t, node);
        admin_call_t *c = q->done_arg;
        h2o_req_t *req = c->req;
        /* Forget the pool link before answering: the answer may free the pool. */
        if (c->link != NULL)
            c->link->call = NULL;
        a->calls--;
        c->finish(c, req, q);
        mem_free(c);
    }
}

size_t admin_kick(admin_t *a, const char *app, const char *user, int code, const char *reason)
{
    router_ent_t ents[ROUTE_MAX];
    size_t n = router_lookup(a->srv->router, app, user, ents, ROUTE_MAX), told = 0;

    for (size_t i = 0; i < n && i < ROUTE_MAX; i++) {
        worker_msg_t *m = mem_calloc(sizeof(*m));
        m->kind = WORKER_MSG_KICK;
        m->u.kick.sid = ents[i].sid;
        m->u.kick.code = code;
        m->u.kick.reason = reason;
        if (worker_post(a->srv->workers[ents[i].worker], m, true) != 0)
            mem_free(m); /* that worker is stopping: its sessions are closing anyway */
        else
            told++;
    }
    return told;
}

/* ---- routing and authentication ------------------------------------------------------- */

/* The bearer token of the request, or NULL. */
static const h2o_iovec_t *bearer(const h2o_req_t *req)
{
    static const char scheme[] = "Bearer ";
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    const h2o_iovec_t *v;
    if (i < 0)
        return NULL;
    v = &req->headers.entries[i].value;
    if (v->len < sizeof(scheme) - 1 || strncasecmp(v->base, scheme, sizeof(scheme) - 1) != 0)
        return NULL;
    return v;
}

typedef struct other_app {
    kv_txn_t *txn;
    const uint8_t *secret;
    const char *path_app;
    bool found;
} other_app_t;

static int match_other(void *ctx, const char *app, uint64_t created_ms)
{
    other_app_t *o = ctx;
    uint8_t secret[TOKEN_SECRET];
    (void)created_ms;
    if (strcmp(app, o->path_app) == 0 || kv_app_get(o->txn, app, secret) < 0)
        return 0;
    o->found = CRYPTO_memcmp(secret, o->secret, TOKEN_SECRET) == 0;
    return o->found ? 1 : 0;
}

/* Check "Authorization: Bearer <the app's secret, 64 hex>" for @p app: 401 for a missing
 * or wrong secret, 403 for another app's secret. @return true when the request may go on
 * (else it was answered). */
static bool authorize(admin_t *a, h2o_req_t *req, const char *app)
{
    static const char scheme_len = 7;
    const h2o_iovec_t *v = bearer(req);
    uint8_t given[TOKEN_SECRET], secret[TOKEN_SECRET];
    kv_txn_t *txn = NULL;
    other_app_t other;
    int rc;

    if (v == NULL || v->len != (size_t)scheme_len + 2 * TOKEN_SECRET) {
        (void)admin_error(req, 401, "UNAUTHORIZED",
                          "send Authorization: Bearer <the app's secret, 64 hex digits>");
        return false;
    }
    if (admin_hex32(v->base + scheme_len, v->len - (size_t)scheme_len, given) < 0) {
        (void)admin_error(req, 401, "UNAUTHORIZED", "the secret must be 64 hex digits");
        return false;
    }
    if ((rc = kv_begin(a->srv->kv, KV_READ, &txn)) < 0) {
        (void)admin_error(req, 500, "INTERNAL", "storage unavailable");
        return false;
    }
    rc = kv_app_get(txn, app, secret);
    if (rc == 0 && CRYPTO_memcmp(secret, given, TOKEN_SECRET) == 0) {
        kv_abort(txn);
        return true;
    }
    memset(&other, 0, sizeof(other));
    other.txn = txn;
    other.secret = given;
    other.path_app = app;
    if (rc == 0 || rc == RC_ENOTFOUND)
        (void)kv_app_each(txn, match_other, &other);
    kv_abort(txn);
    if (rc < 0 && rc != RC_ENOTFOUND)
        (void)admin_error(req, 500, "INTERNAL", "storage error");
    else if (other.found)
        (void)admin_error(req, 403, "FORBIDDEN", "that secret belongs to another app");
    else
        (void)admin_error(req, 401, "UNAUTHORIZED", "wrong secret for app '%s'", app);
    return false;
}

static int healthz(admin_t *a, h2o_req_t *req)
{
    if (atomic_load(&a->srv->stopping))
        return admin_text(req, 503, "text/plain", H2O_STRLIT("shutting down\n"));
    if (!atomic_load(&a->srv->ready))
        return admin_text(req, 503, "text/plain", H2O_STRLIT("starting\n"));
    if (cluster_is_enabled(a->srv->cluster) && !cluster_bus_up(a->srv->cluster))
        return admin_text(req, 503, "text/plain", H2O_STRLIT("bus down\n"));
    return admin_text(req, 200, "text/plain", H2O_STRLIT("ok\n"));
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    admin_t *a = ((admin_handler_t *)self)->a;
    char buf[1024], *seg[ADMIN_SEGS_MAX];
    int n = admin_split_path(req->path.base,
                             req->query_at != SIZE_MAX ? req->query_at : req->path.len, buf,
                             sizeof(buf), seg, ADMIN_SEGS_MAX);

    if (n < 0)
        return admin_error(req, 400, "BAD_REQUEST", "malformed path");
    if (n == 1 && strcmp(seg[0], "healthz") == 0)
        return admin_method(req, "GET") || admin_method(req, "HEAD")
                   ? healthz(a, req)
                   : admin_error(req, 405, "METHOD_NOT_ALLOWED", "use GET");
    if (n == 1 && strcmp(seg[0], "metrics") == 0)
        return admin_method(req, "GET") ? admin_metrics(a, req)
                                        : admin_error(req, 405, "METHOD_NOT_ALLOWED", "use GET");
    if (n == 2 && strcmp(seg[0], "v1") == 0 && strcmp(seg[1], "node") == 0)
        return admin_method(req, "GET") ? admin_node(a, req)
                                        : admin_error(req, 405, "METHOD_NOT_ALLOWED", "use GET");
    if (n >= 4 && strcmp(seg[0], "v1") == 0 && strcmp(seg[1], "apps") == 0) {
        if (!atomic_load(&a->srv->ready) || atomic_load(&a->srv->stopping))
            return admin_error(req, 503, atomic_load(&a->srv->stopping) ? "SHUTTING_DOWN"
                                                                         : "SERVER_BUSY",
                               "%s", atomic_load(&a->srv->stopping) ? "shutting down"
                                                                    : "starting; retry soon");
        if (!kv_id_valid(seg[2]))
            return admin_error(req, 404, "NOT_FOUND", "no such app");
        if (!authorize(a, req, seg[2]))
            return 0;
        return admin_api(a, req, seg[2], seg + 3, (size_t)n - 3);
    }
    return admin_error(req, 404, "NOT_FOUND", "no such endpoint (docs/ADMIN-API.md)");
}

/* ---- the listener and the thread ------------------------------------------------------ */

static void on_conn_closed(uv_handle_t *h)
{
    admin_t *a = h->loop->data;
    a->conns--;
    mem_free(h);
}

static void on_connection(uv_stream_t *listener, int status)
{
    admin_t *a = listener->data;
    uv_tcp_t *conn;
    h2o_socket_t *sock;

    if (status < 0)
        return;
    conn = mem_calloc(sizeof(*conn));
    uv_tcp_init(&a->loop, conn);
    a->conns++;
    if (uv_accept(listener, (uv_stream_t *)conn) != 0 || a->conns > ADMIN_CONNS_MAX ||
        a->closing) {
        uv_close((uv_handle_t *)conn, on_conn_closed);
        return;
    }
    sock = h2o_uv_socket_create((uv_stream_t *)conn, on_conn_closed);
    h2o_accept(&a->accept, sock);
}

static int bind_listener(admin_t *a)
{
    char host[256];
    struct sockaddr_storage ss;
    int namelen = sizeof(ss), port, rc;

    if (conf_addr_split(a->srv->conf->admin_listen, host, sizeof(host), &port) < 0)
        return RC_EINVAL;
    if ((rc = uv_ip4_addr(host, port, (struct sockaddr_in *)&ss)) < 0 &&
        (rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss)) < 0)
        return rc;
    uv_tcp_init(&a->loop, &a->listener);
    a->listener.data = a;
    if ((rc = uv_tcp_bind(&a->listener, (struct sockaddr *)&ss, 0)) < 0 ||
        (rc = uv_listen((uv_stream_t *)&a->listener, 128, on_connection)) < 0)
        return rc;
    if (uv_tcp_getsockname(&a->listener, (struct sockaddr *)&ss, &namelen) == 0) {
        char ip[PEER_ADDR_STRLEN];
        if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof(ip));
            snprintf(a->address, sizeof(a->address), "[%s]:%u", ip,
                     ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
        } else {
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip));
            snprintf(a->address, sizeof(a->address), "%s:%u", ip,
                     ntohs(((struct sockaddr_in *)&ss)->sin_port));
        }
    }
    return 0;
}

static void on_stop(uv_async_t *h)
{
    admin_t *a = h->data;
    a->closing = true;
    uv_close((uv_handle_t *)&a->listener, NULL);
    /* Connections close once their answer is sent. (Not h2o_context_request_shutdown: it
     * arms HTTP/2's graceful-shutdown timer, which holds the context for a second.) */
    a->ctx.shutdown_requested = 1;
    uv_stop(&a->loop);
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, h->type == UV_TCP && h->data != NULL && h->loop->data != h->data
                        ? on_conn_closed
                        : NULL);
}

static void run(void *arg)
{
    admin_t *a = arg;
    uint64_t deadline;

    (void)pthread_setname_np(pthread_self(), "cimd-admin");
    log_set_thread("admin");
    uv_run(&a->loop, UV_RUN_DEFAULT); /* until on_stop */
    /* Let answers in flight and closing connections finish, for a bounded time. */
    deadline = uv_now(&a->loop) + ADMIN_DRAIN_MS;
    while ((a->conns > 0 || a->calls > 0) && uv_now(&a->loop) < deadline) {
        uv_run(&a->loop, UV_RUN_NOWAIT);
        uv_sleep(5);
        uv_update_time(&a->loop);
    }
    if (a->conns > 0) {
        /* Idle keep-alive clients: h2o has no call to close them before their timeout, and
         * its context cannot be disposed under them. The process is exiting: leave the
         * loop as it is. */
        LOG_WARN("admin: %u idle connections still open at shutdown; not waiting", a->conns);
        return;
    }
    h2o_context_dispose(&a->ctx);
    mbox_close(&a->box, NULL);
    uv_close((uv_handle_t *)&a->stop, NULL);
    uv_walk(&a->loop, close_any, NULL);
    uv_run(&a->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&a->loop) != 0)
        LOG_WARN("admin: loop did not close cleanly");
}

static void thread_main(void *arg)
{
    admin_t *a = arg;
    admin_handler_t *hd;

    if ((a->start_rc = uv_loop_init(&a->loop)) < 0) {
        uv_sem_post(&a->started);
        return;
    }
    a->loop.data = a;
    hd = (admin_handler_t *)http_config(&a->config, sizeof(*hd), on_req, ADMIN_BODY_MAX, 0);
    hd->a = a;
    h2o_context_init(&a->ctx, &a->loop, &a->config);
    a->accept.ctx = &a->ctx;
    a->accept.hosts = a->config.hosts;
    uv_async_init(&a->loop, &a->stop, on_stop);
    a->stop.data = a;
    a->box.data = a;
    if ((a->start_rc = mbox_init(&a->box, &a->loop, SIZE_MAX, on_wake)) == 0)
        a->start_rc = bind_listener(a);
    uv_sem_post(&a->started);
    if (a->start_rc == 0) {
        run(a);
        if (a->conns > 0)
            return; /* abandoned (see run) */
    } else {
        h2o_context_dispose(&a->ctx);
        uv_walk(&a->loop, close_any, NULL);
        uv_run(&a->loop, UV_RUN_DEFAULT);
        (void)uv_loop_close(&a->loop);
    }
    h2o_config_dispose(&a->config);
}

int admin_start(server_t *srv, admin_t **out)
{
    admin_t *a = mem_calloc(sizeof(*a));
    int rc;

    a->srv = srv;
    uv_sem_init(&a->started, 0);
    if ((rc = uv_thread_create(&a->thread, thread_main, a)) < 0) {
        uv_sem_destroy(&a->started);
        mem_free(a);
        LOG_ERROR("admin: cannot start its thread: %s", uv_strerror(rc));
        return rc;
    }
    uv_sem_wait(&a->started);
    uv_sem_destroy(&a->started);
    if ((rc = a->start_rc) < 0) {
        uv_thread_join(&a->thread);
        LOG_ERROR("admin: cannot listen on %s: %s", srv->conf->admin_listen,
                  rc == RC_EINVAL ? "bad address" : uv_strerror(rc));
        mem_free(a);
        return rc;
    }
    LOG_INFO("admin: listening on %s", a->address);
    *out = a;
    return 0;
}

const char *admin_address(const admin_t *a)
{
    return a->address;
}

void admin_stop(admin_t *a)
{
    if (a == NULL)
        return;
    uv_async_send(&a->stop);
    uv_thread_join(&a->thread);
    mem_free(a);
}
