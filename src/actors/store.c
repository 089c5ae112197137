#include "actors/store.h"

#include <string.h>

#include "core/kv.h"
#include "core/log.h"
#include "core/mbox.h"
#include "core/mem.h"
#include "core/rc.h"
#include "core/snowflake.h"

enum { STORE_REQ_USER = 1, STORE_REQ_STOP };

typedef struct store_req {
    mbox_node_t node;
    int kind;
    char app[KV_ID_MAX + 1];
    char user[KV_ID_MAX + 1];
} store_req_t;

struct store {
    server_t *srv;
    uv_thread_t thread;
    uv_loop_t loop;
    mbox_t box;
    bool started;
    uint64_t batches, requests; /* statistics, store thread only */
};

/* Apply one batch in one transaction. A full map is grown and the batch retried; other
 * failures are logged and the batch is dropped (nothing in it was acknowledged). */
static void apply(store_t *st, store_req_t **reqs, size_t n)
{
    kv_txn_t *txn = NULL;
    int rc, tries = 0;

again:
    if ((rc = kv_begin(st->srv->kv, KV_WRITE, &txn)) < 0)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        if (reqs[i]->kind != STORE_REQ_USER)
            continue;
        rc = kv_user_add(txn, reqs[i]->app, reqs[i]->user, snowflake_now_ms());
        if (rc == RC_EEXIST)
            rc = 0;
        if (rc < 0) {
            kv_abort(txn);
            goto fail;
        }
    }
    if ((rc = kv_commit(txn)) < 0)
        goto fail;
    st->batches++;
    st->requests += n;
    return;
fail:
    if (rc == RC_EMAPFULL && tries++ < 8 && kv_grow(st->srv->kv) == 0)
        goto again;
    LOG_ERROR("store: batch of %zu requests failed: %s", n, rc_str(rc));
}

static void on_wake(mbox_t *box)
{
    store_t *st = box->data;
    store_req_t *batch[1024];
    mbox_node_t *node;
    size_t n = 0;
    bool stop = false;

    /* Drain everything pending, committing every 1024 requests: the batch grows with the
     * backlog, which is what makes group commit pay. */
    while ((node = mbox_pop(box)) != NULL) {
        store_req_t *r = container_of(node, store_req_t, node);
        if (r->kind == STORE_REQ_STOP)
            stop = true;
        batch[n++] = r;
        if (n == 1024) {
            apply(st, batch, n);
            for (size_t i = 0; i < n; i++)
                mem_free(batch[i]);
            n = 0;
        }
    }
    if (n > 0)
        apply(st, batch, n);
    for (size_t i = 0; i < n; i++)
        mem_free(batch[i]);
    if (stop)
        mbox_close(box, NULL);
}

static void run(void *arg)
{
    store_t *st = arg;
    log_set_thread("store");
    uv_run(&st->loop, UV_RUN_DEFAULT);
    LOG_DEBUG("store: %llu batches, %llu requests", (unsigned long long)st->batches,
              (unsigned long long)st->requests);
}

store_t *store_new(server_t *srv)
{
    store_t *st = mem_calloc(sizeof(*st));
    st->srv = srv;
    return st;
}

int store_start(store_t *st)
{
    int rc;
    if ((rc = uv_loop_init(&st->loop)) < 0)
        return rc;
    if ((rc = mbox_init(&st->box, &st->loop, STORE_QUEUE_MAX, on_wake)) < 0) {
        (void)uv_loop_close(&st->loop); /* nothing was opened on it */
        return rc;
    }
    st->box.data = st;
    if ((rc = uv_thread_create(&st->thread, run, st)) < 0) {
        mbox_close(&st->box, NULL);
        uv_run(&st->loop, UV_RUN_DEFAULT);
        (void)uv_loop_close(&st->loop);
        return rc;
    }
    st->started = true;
    return 0;
}

int store_user_ensure(store_t *st, const char *app, const char *user)
{
    store_req_t *r = mem_calloc(sizeof(*r));
    int rc;
    r->kind = STORE_REQ_USER;
    snprintf(r->app, sizeof(r->app), "%s", app);
    snprintf(r->user, sizeof(r->user), "%s", user);
    if ((rc = mbox_send(&st->box, &r->node)) < 0)
        mem_free(r);
    return rc;
}

void store_stop(store_t *st)
{
    store_req_t *r;
    if (!st->started)
        return;
    r = mem_calloc(sizeof(*r));
    r->kind = STORE_REQ_STOP;
    if (mbox_send_force(&st->box, &r->node) < 0)
        mem_free(r);
    uv_thread_join(&st->thread);
    st->started = false;
    if (uv_loop_close(&st->loop) != 0)
        LOG_ERROR("store: loop did not close cleanly");
}

void store_free(store_t *st)
{
    mem_free(st);
}
