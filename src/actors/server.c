#include "actors/server.h"

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "actors/acceptor.h"
#include "actors/admin.h"
#include "actors/cluster.h"
#include "actors/migrate.h"
#include "actors/relay.h"
#include "actors/router.h"
#include "actors/send.h"
#include "actors/session.h"
#include "actors/store.h"
#include "actors/throttle.h"
#include "actors/watchdog.h"
#include "actors/webhook.h"
#include "actors/worker.h"
#include "actors/ws.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/notify.h"
#include "core/rc.h"

/* The main thread's loop: acceptor and signals. Reached only from the main thread. */
struct main_loop {
    uv_loop_t loop;
    uv_signal_t sigterm, sigint;
    uv_async_t stop;
    watchdog_t *watchdog; /* NULL unless systemd asked for keep-alives */
};
typedef struct main_loop main_loop_t;

static void on_stop(uv_async_t *h)
{
    uv_stop(h->loop);
}

static void on_signal(uv_signal_t *h, int signum)
{
    LOG_INFO("%s received: shutting down", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    uv_stop(h->loop);
}

/* Take the data directory's lock before anything else there is opened or created: a
 * second cimd must leave LMDB and the identity alone. @return 0 or rc (logged). */
static int lock_data(server_t *s)
{
    const char *dir = s->conf->data;
    pid_t holder = 0;
    int rc;

    if ((rc = datadir_lock_new(dir, &s->lock, &holder)) == 0)
        return 0;
    if (rc == -EBUSY && holder > 0)
        LOG_ERROR("data directory %s is in use by another cimd (pid %ld): stop it first, "
                  "or give this one another --data", dir, (long)holder);
    else if (rc == -EBUSY)
        LOG_ERROR("data directory %s is in use by another cimd (pid unknown; see %s/%s)", dir,
                  dir, DATADIR_LOCK);
    else
        LOG_ERROR("cannot lock the data directory %s (%s/%s): %s", dir, dir, DATADIR_LOCK,
                  rc_str(rc));
    return rc;
}

int server_start(const conf_t *conf, server_t **out)
{
    server_t *s = mem_calloc(sizeof(*s));
    char path[DATADIR_PATH_MAX];
    int rc;

    s->conf = conf;
    /* Blocks of 128 KiB and more (a slow reader's backlog) are mapped and unmapped on
     * free, so memory a burst took is given back, not kept by the allocator. Setting the
     * threshold also stops glibc raising it after such a free. */
    (void)mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    (void)notify_send("STATUS=opening %s", conf->data); /* best effort, as every notify */
    if (mkdir(conf->data, 0700) < 0 && errno != EEXIST) {
        rc = -errno;
        LOG_ERROR("cannot create data directory %s: %s", conf->data, strerror(errno));
        goto fail;
    }
    if ((rc = lock_data(s)) < 0)
        goto fail;
    if ((rc = kv_open(conf->data,
                      KV_MIGRATE | KV_DEFER | (conf->durability == CONF_DURABILITY_NOSYNC ? KV_NOSYNC : 0),
                      &s->kv)) < 0) {
        LOG_ERROR("cannot open the database in %s: %s", conf->data, rc_str(rc));
        goto fail;
    }
    if ((rc = migrate_run(s->kv)) < 0)
        goto fail;
    /* The default app before the identity, as `cimctl init` does: a directory with an
     * identity key always has its default app (tools rely on it). */
    if ((rc = kv_app_ensure_default(s->kv)) < 0) {
        LOG_ERROR("cannot create the default app: %s", rc_str(rc));
        goto fail;
    }
    if ((rc = datadir_path(path, sizeof(path), conf->data, DATADIR_IDENTITY)) < 0) {
        LOG_ERROR("data directory path too long: %s", conf->data);
        goto fail;
    }
    if ((rc = chan_identity_load(path, &s->identity, &s->identity_created)) < 0) {
        LOG_ERROR("cannot load or create the identity key %s: %s", path, rc_str(rc));
        goto fail;
    }
    chan_identity_public(s->identity, s->identity_pub);
    s->router = router_new();
    s->throttle = throttle_new(conf->login_fail_max, conf->login_fail_window_s);
    s->nworkers = conf->workers;
    if (s->nworkers == 0) {
        uv_cpu_info_t *cpus;
        int n;
        s->nworkers = uv_cpu_info(&cpus, &n) == 0 ? (uint32_t)n : 1;
        if (s->nworkers > 0)
            uv_free_cpu_info(cpus, n);
        if (s->nworkers == 0)
            s->nworkers = 1;
    }
    /* Before the store and the workers, which emit its events. */
    s->webhook = webhook_new(s);
    if ((rc = webhook_start(s->webhook)) < 0)
        goto fail;
    /* Before the admin listener, whose /healthz and /v1/node read it; its thread starts
     * with the workers (server_run), to which it hands relayed sessions' frames. */
    s->cluster = cluster_new(conf);
    cluster_set_relay(s->cluster, relay_on_bus, relay_on_node_down, s);
    cluster_set_xhome(s->cluster, send_check_home, send_has_home, send_deliver_home, s);
    cluster_set_presence(s->cluster, session_presence_here);
    if (strcmp(conf->ws_listen, "off") != 0 && (rc = ws_global_new(s, &s->ws)) < 0)
        goto fail;
    s->main = mem_calloc(sizeof(*s->main));
    s->workers = mem_calloc(s->nworkers * sizeof(*s->workers));
    for (uint32_t i = 0; i < s->nworkers; i++)
        s->workers[i] = worker_new(s, i);
    s->store = store_new(s);
    /* The admin listener before the store's start, which may take a while (the dedup
     * window is rebuilt from the log): /healthz says 503 until the server is ready. */
    if (strcmp(conf->admin_listen, "off") != 0 && (rc = admin_start(s, &s->admin)) < 0)
        goto fail;
    if ((rc = store_start(s->store)) < 0) {
        LOG_ERROR("cannot start the store: %s", rc_str(rc));
        goto fail;
    }
    *out = s;
    return 0;
fail:
    server_free(s);
    return rc;
}

static void stop_workers(server_t *s, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        worker_msg_t *m = mem_calloc(sizeof(*m));
        m->kind = WORKER_MSG_STOP;
        if (worker_post(s->workers[i], m, true) != 0)
            mem_free(m);
    }
    for (uint32_t i = 0; i < n; i++)
        worker_join(s->workers[i]);
}

int server_run(server_t *s)
{
    main_loop_t *m = s->main;
    char hex[2 * CHAN_KEY + 1];
    uint32_t started = 0;
    int rc;

    if ((rc = uv_loop_init(&m->loop)) < 0)
        return rc;
    uv_signal_init(&m->loop, &m->sigterm);
    uv_signal_init(&m->loop, &m->sigint);
    uv_async_init(&m->loop, &m->stop, on_stop);
    uv_signal_start(&m->sigterm, on_signal, SIGTERM);
    uv_signal_start(&m->sigint, on_signal, SIGINT);

    for (; started < s->nworkers; started++) {
        if ((rc = worker_start(s->workers[started])) < 0) {
            LOG_ERROR("cannot start worker %u: %s", started, uv_strerror(rc));
            goto stop;
        }
    }
    if ((rc = cluster_start(s->cluster)) < 0)
        goto stop;
    if ((rc = acceptor_start(s, &m->loop, &s->acceptor)) < 0)
        goto stop;
    chan_hex(s->identity_pub, hex);
    /* Scripts parse this line (README, test/support/server.c): keep its words in place;
     * the suffix comes last and adds no ':' (but DIR's own). */
    if (acceptor_ws_address(s->acceptor) != NULL)
        LOG_INFO("ws: listening on %s (GET /ws, subprotocol " WS_SUBPROTOCOL ")",
                 acceptor_ws_address(s->acceptor));
    LOG_INFO("cimd ready: listening on %s key %s workers %u%s%s%s",
             acceptor_address(s->acceptor), hex, s->nworkers,
             s->identity_created ? " (new identity created in " : "",
             s->identity_created ? s->conf->data : "", s->identity_created ? ")" : "");
    /* Serving: the listener is up and the store open. Sent before the loop runs (a loop
     * callback must not block on the manager's socket). */
    (void)notify_send("READY=1\nSTATUS=serving on %s, %u workers", acceptor_address(s->acceptor),
                      s->nworkers);
    if ((rc = watchdog_start(s, &m->loop, &m->watchdog)) < 0) {
        LOG_ERROR("cannot start the watchdog timer: %s", uv_strerror(rc));
        goto stop;
    }
    atomic_store(&s->ready, 1);
    uv_run(&m->loop, UV_RUN_DEFAULT);
    atomic_store(&s->stopping, 1);
    rc = 0;
stop:
    (void)notify_send("STOPPING=1\nSTATUS=shutting down");
    watchdog_close(m->watchdog);
    m->watchdog = NULL;
    /* Order matters: the listener stops taking connections first (a closed poll handle
     * is only freed by the next loop run), then every worker says BYE and drains, then
     * the store commits what the workers queued, and the acceptor, which counted the
     * workers' closed connections until now, goes last. */
    if (s->acceptor != NULL) {
        acceptor_close(s->acceptor);
    }
    atomic_store(&s->stopping, 1);
    stop_workers(s, started);
    store_stop(s->store);
    /* After the store: every write the admin API queued has been answered. */
    admin_stop(s->admin);
    s->admin = NULL;
    cluster_stop(s->cluster); /* after the admin thread, which reads it */
    for (uint32_t i = 0; i < started; i++)
        worker_drain(s->workers[i]); /* what the bus handed over while they stopped */
    webhook_stop(s->webhook); /* after every producer of its events */
    uv_close((uv_handle_t *)&m->sigterm, NULL);
    uv_close((uv_handle_t *)&m->sigint, NULL);
    uv_close((uv_handle_t *)&m->stop, NULL);
    uv_run(&m->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&m->loop) != 0) {
        LOG_ERROR("main loop did not close cleanly");
        rc = rc ? rc : RC_EINVAL;
    }
    s->acceptor = NULL;
    LOG_INFO("cimd stopped");
    return rc;
}

void server_stop(server_t *s)
{
    uv_async_send(&s->main->stop);
}

void server_free(server_t *s)
{
    if (s == NULL)
        return;
    admin_stop(s->admin); /* a start that failed after it began */
    if (s->workers != NULL)
        for (uint32_t i = 0; i < s->nworkers; i++)
            worker_free(s->workers[i]);
    mem_free(s->workers);
    ws_global_free(s->ws); /* after the workers' contexts */
    mem_free(s->main);
    store_free(s->store);
    cluster_stop(s->cluster); /* a start that failed after the cluster thread began */
    cluster_free(s->cluster);
    webhook_stop(s->webhook); /* a start that failed after the webhook thread began */
    webhook_free(s->webhook);
    router_free(s->router);
    throttle_free(s->throttle);
    chan_identity_free(s->identity);
    kv_close(s->kv);
    datadir_lock_free(s->lock); /* last: nothing of this server touches the dir after it */
    mem_free(s);
}
