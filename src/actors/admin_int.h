/**
 * admin internals shared by admin.c (thread, listener, HTTP plumbing, routing, auth),
 * admin_api.c (the application API), admin_metrics.c (/metrics) and admin_node.c
 * (/v1/node). Everything here runs on the admin thread.
 */
#ifndef CIM_ACTORS_ADMIN_INT_H
#define CIM_ACTORS_ADMIN_INT_H

#define H2O_USE_LIBUV 1
#include <h2o.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "actors/acceptor.h"
#include "actors/admin.h"
#include "actors/store.h"
#include "core/mbox.h"

#define ADMIN_BODY_MAX (1024 * 1024) /* request entity bytes; h2o answers 413 above */
#define ADMIN_CONNS_MAX 256          /* connections at once; more are closed at accept */
#define ADMIN_SEGS_MAX 8             /* path segments routed */

struct admin {
    server_t *srv;
    uv_thread_t thread;
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t stop;
    mbox_t box;                 /* store completions (store_req_t.node) */
    uv_sem_t started;
    int start_rc;
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept;
    uint32_t conns;
    uint32_t calls;             /* store requests in flight */
    bool closing;
    char address[PEER_ADDR_STRLEN + 8];
};

typedef struct admin_call admin_call_t;

/** Called when a call's store request comes back; @p req is NULL when the HTTP client
 * went away meanwhile (the write happened all the same). Takes @p q. */
typedef void (*admin_finish_fn)(admin_call_t *c, h2o_req_t *req, store_req_t *q);

/** A request waiting for the store. */
struct admin_call {
    admin_t *a;
    h2o_req_t *req;             /* NULL once the client is gone */
    struct admin_link *link;    /* in req's pool: clears req when the pool goes */
    admin_finish_fn finish;
    char app[KV_ID_MAX + 1];
    char user[KV_ID_MAX + 1];
};

/**
 * Queue @p q (a store_send_t or store_op_t from store_*_new) for the store on behalf of
 * @p req; @p finish answers when it comes back. On failure (store busy or stopping) the
 * request is answered 503 here and @p q freed.
 * @return 0 (h2o's "handled").
 */
int admin_call(admin_t *a, h2o_req_t *req, store_req_t *q, admin_finish_fn finish,
               const char *app, const char *user);

/** Answer @p body (stolen) as JSON with @p status. @return 0. */
int admin_json(h2o_req_t *req, int status, json_t *body);

/** Answer {"code": @p code, "reason": ...} with @p status. @return 0. */
int admin_error(h2o_req_t *req, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/** Answer a cim_Code refusal with the HTTP status that fits it. @return 0. */
int admin_refuse(h2o_req_t *req, int cim_code, const char *reason);

/** Answer @p len bytes of @p text with @p status and @p content_type. @return 0. */
int admin_text(h2o_req_t *req, int status, const char *content_type, const char *text,
               size_t len);

/** Parse the request body as a JSON object; answers 400 itself and returns NULL when it is
 * not one (an empty body is an empty object when @p empty_ok). */
json_t *admin_body(h2o_req_t *req, bool empty_ok);

/** Close every session of (@p app, @p user) with BYE{@p code, @p reason (a literal)}.
 * @return how many were told. */
size_t admin_kick(admin_t *a, const char *app, const char *user, int code, const char *reason);

/** The application API: @p seg are the path segments after /v1/apps/{app}/ (@p nseg of
 * them), the caller has authenticated the app. @return 0. */
int admin_api(admin_t *a, h2o_req_t *req, const char *app, char **seg, size_t nseg);

/** GET /metrics. @return 0. */
int admin_metrics(admin_t *a, h2o_req_t *req);

/**
 * Check the metrics_token bearer, which /metrics and /v1/node ask for when it is set.
 * @return true when the request may go on, false when it was answered 401.
 */
bool admin_metrics_auth(admin_t *a, h2o_req_t *req);

/** GET /v1/node: this node, its cluster and the peers' liveness (JSON). @return 0. */
int admin_node(admin_t *a, h2o_req_t *req);

/** @return true when the request's method is @p m. */
bool admin_method(const h2o_req_t *req, const char *m);

#endif
