#include "actors/watchdog.h"

#include <stdatomic.h>
#include <stdbool.h>

#include "actors/worker.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/notify.h"

#define STALE_MIN_MS 1000 /* a worker sweeps every 100 ms; a second late is a hang */

struct watchdog {
    server_t *srv;
    uv_timer_t timer;
    uv_work_t ping;
    uint64_t stale_ms; /* a worker whose last sweep is older than this is hung */
    bool pinging;      /* a keep-alive job is in flight */
    bool closing;      /* watchdog_close was called */
    bool timer_closed;
};

static void maybe_free(watchdog_t *wd)
{
    if (wd->timer_closed && !wd->pinging)
        mem_free(wd);
}

/* Thread pool: the one call that may block. */
static void do_ping(uv_work_t *req)
{
    (void)req;
    (void)notify_send("WATCHDOG=1"); /* best effort: a failed ping is what the watchdog is for */
}

static void on_pinged(uv_work_t *req, int status)
{
    watchdog_t *wd = req->data;

    (void)status; /* UV_ECANCELED only when the loop is torn down: nothing to do either way */
    wd->pinging = false;
    maybe_free(wd);
}

/* @return the index of a worker whose loop has not swept for wd->stale_ms, or -1. */
static long stale_worker(const watchdog_t *wd, uint64_t now)
{
    const server_t *s = wd->srv;

    for (uint32_t i = 0; i < s->nworkers; i++) {
        uint64_t at = atomic_load_explicit(&s->workers[i]->swept_ms, memory_order_relaxed);
        if (now > at && now - at > wd->stale_ms)
            return (long)i;
    }
    return -1;
}

static void on_tick(uv_timer_t *t)
{
    watchdog_t *wd = t->data;
    long hung;

    uv_update_time(t->loop); /* compare with the workers' stamps as of now */
    if ((hung = stale_worker(wd, uv_now(t->loop))) >= 0) {
        LOG_RL(LOG_LVL_ERROR, "watchdog: worker %ld has not run for over %llu ms: no keep-alive",
               hung, (unsigned long long)wd->stale_ms);
        return;
    }
    if (wd->pinging || wd->closing)
        return;
    wd->pinging = true;
    if (uv_queue_work(t->loop, &wd->ping, do_ping, on_pinged) < 0)
        wd->pinging = false; /* next tick tries again */
}

int watchdog_start(server_t *s, uv_loop_t *loop, watchdog_t **out)
{
    uint64_t usec = notify_watchdog_usec();
    uint64_t every_ms = usec / 2000;
    watchdog_t *wd;
    int rc;

    *out = NULL;
    if (usec == 0)
        return 0;
    wd = mem_calloc(sizeof(*wd));
    wd->srv = s;
    wd->ping.data = wd;
    wd->timer.data = wd;
    wd->stale_ms = every_ms > STALE_MIN_MS ? every_ms : STALE_MIN_MS;
    if (every_ms == 0)
        every_ms = 1;
    if ((rc = uv_timer_init(loop, &wd->timer)) < 0) {
        mem_free(wd);
        return rc;
    }
    if ((rc = uv_timer_start(&wd->timer, on_tick, every_ms, every_ms)) < 0) {
        watchdog_close(wd); /* frees it once closed */
        return rc;
    }
    LOG_INFO("watchdog: keep-alive every %llu ms while every worker runs",
             (unsigned long long)every_ms);
    *out = wd;
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    watchdog_t *wd = h->data;

    wd->timer_closed = true;
    maybe_free(wd);
}

void watchdog_close(watchdog_t *wd)
{
    if (wd == NULL)
        return;
    wd->closing = true;
    uv_close((uv_handle_t *)&wd->timer, on_timer_closed);
}
