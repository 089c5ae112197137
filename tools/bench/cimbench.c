/* cimbench: the load generator of cim (DESIGN.md "Tools"). The driver: command line,
 * descriptor limit, tokens, the loop threads and their commands, the timers, the
 * connection pool, the series of windows, the report. The scenarios live in sc_*.c;
 * bench.h says how the two meet and how the threads talk. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "core/chan.h"
#include "core/home.h"
#include "core/kv.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rc.h"
#include "core/snowflake.h"
#include "core/token.h"
#include "core/version.h"
#include "proc.h"

#define DEF_DURATION_S  10.0
#define DEF_CONNS       1000
#define DEF_CONCURRENCY 100
#define DEF_SOURCES     32
#define DEF_TIMEOUT_MS  10000
#define DEF_PORT        7400
#define DEF_GROUPS      1
#define DEF_MEMBERS     100
#define DEF_MESSAGES    10000
#define DEF_LIMIT       500
#define DEF_WINDOW_S    10.0

static const scenario_t *const scenarios[] = {&sc_login, &sc_conns, &sc_c2c,
                                              &sc_group, &sc_sync,  &sc_fill};
#define NSCENARIOS (sizeof(scenarios) / sizeof(scenarios[0]))

/* ---- small helpers -------------------------------------------------------------------- */

uint64_t bench_now_ns(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts); /* cannot fail for CLOCK_MONOTONIC */
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

const char *bench_si(char *buf, size_t len, double v)
{
    if (v >= 1e6)
        snprintf(buf, len, "%.2fM", v / 1e6);
    else if (v >= 1e4)
        snprintf(buf, len, "%.1fk", v / 1e3);
    else
        snprintf(buf, len, "%.0f", v);
    return buf;
}

void bench_user(char *out, size_t len, unsigned i)
{
    snprintf(out, len, "u%u", i);
}

uint64_t bench_share(uint64_t total, unsigned n, unsigned i)
{
    return total / n + (i < total % n ? 1 : 0);
}

void bench_count_code(bench_t *b, int code)
{
    if (code == cim_Code_OK)
        return;
    atomic_fetch_add_explicit(&b->codes[code >= 0 && code < BENCH_CODES ? code : BENCH_CODES - 1],
                              1, memory_order_relaxed);
}

void bench_count_rc(bench_t *b, int rc)
{
    unsigned i;

    uv_mutex_lock(&b->err_mu);
    for (i = 0; i < BENCH_RCS - 1 && b->rc_cnt[i] != 0; i++)
        if (b->rc_val[i] == rc)
            break;
    /* the last slot collects whatever does not fit */
    b->rc_val[i] = b->rc_cnt[i] == 0 || b->rc_val[i] == rc ? rc : b->rc_val[i];
    b->rc_cnt[i]++;
    uv_mutex_unlock(&b->err_mu);
}

uint64_t bench_errors(bench_t *b)
{
    uint64_t n = 0;

    for (unsigned i = 0; i < BENCH_CODES; i++)
        n += atomic_load_explicit(&b->codes[i], memory_order_relaxed);
    uv_mutex_lock(&b->err_mu);
    for (unsigned i = 0; i < BENCH_RCS; i++)
        n += b->rc_cnt[i];
    uv_mutex_unlock(&b->err_mu);
    return n + b->mismatch + b->unanswered;
}

uint64_t bench_sum(const bench_t *b, size_t off)
{
    uint64_t n = 0;

    for (unsigned i = 0; i < b->nthr; i++)
        if (b->thr[i].sc != NULL)
            n += bench_ctr_get((const bench_ctr_t *)((const char *)b->thr[i].sc + off));
    return n;
}

void bench_ring_push(bconn_t *bc, uint64_t v)
{
    if (bc->ring_len == bc->ring_cap) {
        uint32_t cap = bc->ring_cap != 0 ? bc->ring_cap * 2 : 8;
        uint64_t *r = mem_alloc((size_t)cap * sizeof(*r));
        for (uint32_t i = 0; i < bc->ring_len; i++)
            r[i] = bc->ring[(bc->ring_head + i) % bc->ring_cap];
        mem_free(bc->ring);
        bc->ring = r;
        bc->ring_cap = cap;
        bc->ring_head = 0;
    }
    bc->ring[(bc->ring_head + bc->ring_len) % bc->ring_cap] = v;
    bc->ring_len++;
}

bool bench_ring_pop(bconn_t *bc, uint64_t *v)
{
    if (bc->ring_len == 0)
        return false;
    *v = bc->ring[bc->ring_head];
    bc->ring_head = (bc->ring_head + 1) % bc->ring_cap;
    bc->ring_len--;
    return true;
}

/* ---- threads: commands and events (bench.h) ------------------------------------------- */

void bench_post(bench_thr_t *t, unsigned cmd)
{
    if (t->b->finishing && cmd != BENCH_CMD_FINISH)
        return;
    atomic_fetch_or_explicit(&t->cmds, cmd, memory_order_release);
    (void)uv_async_send(&t->wake); /* cannot fail on an initialised handle */
}

void bench_post_all(bench_t *b, unsigned cmd)
{
    for (unsigned i = 0; i < b->nthr; i++)
        bench_post(&b->thr[i], cmd);
}

void bench_notify(bench_thr_t *t, unsigned ev)
{
    bench_t *b = t->b;

    /* A finished thread posted BENCH_EV_DONE: the main thread may close ctl once all did. */
    if (t->finished)
        return;
    atomic_fetch_or_explicit(&b->evs, ev, memory_order_release);
    (void)uv_async_send(&b->ctl); /* cannot fail on an initialised handle */
}

void bench_fail(bench_thr_t *t)
{
    t->b->failed = true;
    bench_notify(t, BENCH_EV_STOP);
}

static void pool_step(bench_thr_t *t);

/* The thread's part of a progress snapshot. */
static void thr_snap(bench_thr_t *t)
{
    bench_t *b = t->b;

    if (b->sc->thr_snap != NULL && !b->start_failed)
        b->sc->thr_snap(t);
    if (t->login_iv.count != 0) {
        uv_mutex_lock(&b->mu);
        hist_merge(&b->login_lat, &t->login_iv);
        uv_mutex_unlock(&b->mu);
        hist_reset(&t->login_iv);
    }
    if (atomic_fetch_sub_explicit(&b->snap_left, 1, memory_order_acq_rel) == 1)
        bench_notify(t, BENCH_EV_SNAP);
}

/* Close the thread's connections and handles: its loop ends once they are closed. */
static void thr_finish(bench_thr_t *t)
{
    bench_t *b = t->b;

    if (b->sc->thr_finish != NULL && !b->start_failed)
        b->sc->thr_finish(t);
    series_acc_flush(&t->acc);
    if (t->login_iv.count != 0) {
        uv_mutex_lock(&b->mu);
        hist_merge(&b->login_lat, &t->login_iv);
        uv_mutex_unlock(&b->mu);
        hist_reset(&t->login_iv);
    }
    uv_close((uv_handle_t *)&t->wake, NULL);
    cimc_async_loop_free(t->al); /* every connection: on_close(0), then freed */
    t->al = NULL;
    atomic_fetch_add_explicit(&b->threads_done, 1, memory_order_acq_rel);
    bench_notify(t, BENCH_EV_DONE);
    t->finished = true; /* after the last notification */
}

static void on_wake(uv_async_t *h)
{
    bench_thr_t *t = h->data;
    bench_t *b = t->b;
    unsigned cmds = atomic_exchange_explicit(&t->cmds, 0, memory_order_acquire);

    if (t->finished)
        return;
    if ((cmds & BENCH_CMD_POOL) != 0)
        pool_step(t);
    if ((cmds & BENCH_CMD_SC_ALL) != 0 && !b->finishing && !b->start_failed &&
        b->sc->thr_cmd != NULL)
        b->sc->thr_cmd(t, cmds & BENCH_CMD_SC_ALL);
    if ((cmds & BENCH_CMD_SNAP) != 0)
        thr_snap(t);
    if ((cmds & BENCH_CMD_FINISH) != 0)
        thr_finish(t);
}

/* Threads 1..N-1: run the loop until bench_finish closed everything on it. */
static void thr_main(void *arg)
{
    bench_thr_t *t = arg;

    (void)uv_run(&t->own, UV_RUN_DEFAULT); /* returns once every handle is closed */
    t->close_rc = uv_loop_close(&t->own);
}

static void print_progress(bench_t *b);

static void on_ctl(uv_async_t *h)
{
    bench_t *b = h->data;
    unsigned ev = atomic_exchange_explicit(&b->evs, 0, memory_order_acquire);

    if ((ev & BENCH_EV_STOP) != 0 && !b->finishing) {
        if (b->stopping) {
            bench_finish(b);
        } else {
            b->stopping = true;
            b->sc->stop(b);
        }
    }
    if ((ev & BENCH_EV_POOL) != 0 && !b->setup_reported && !b->stopping && !b->finishing &&
        atomic_load_explicit(&b->pool_threads_done, memory_order_acquire) == b->nthr) {
        b->setup_reported = true;
        b->setup_t1_ns = bench_now_ns();
        b->sc->setup_done(b);
    }
    if ((ev & BENCH_EV_CHECK) != 0 && !b->finishing && b->sc->check != NULL)
        b->sc->check(b);
    if ((ev & BENCH_EV_SNAP) != 0 && b->snap_pending &&
        atomic_load_explicit(&b->snap_left, memory_order_acquire) == 0) {
        b->snap_pending = false;
        if (!b->finishing)
            print_progress(b);
    }
    if ((ev & BENCH_EV_DONE) != 0 &&
        atomic_load_explicit(&b->threads_done, memory_order_acquire) == b->nthr &&
        !uv_is_closing((uv_handle_t *)&b->ctl))
        uv_close((uv_handle_t *)&b->ctl, NULL); /* no thread notifies any more */
}

/* ---- connections ---------------------------------------------------------------------- */

unsigned bench_server_of(const bench_t *b, const bconn_t *bc)
{
    unsigned user = b->sc->user_no != NULL ? b->sc->user_no(b, bc) : bc->idx % b->o.users;

    return user % b->o.nservers;
}

/* Every connection's callbacks pass through these: the driver counts the logins per
 * server, then the scenario's own (bc->cbs) run. */
static void conn_on_ready(cimc_t *c, void *ctx, int status, const cim_LoginRsp *rsp)
{
    bconn_t *bc = ctx;

    if (status == 0 && rsp != NULL && rsp->code == cim_Code_OK)
        bench_ctr_add(&bc->t->srv_logged_in[bc->srv], 1);
    if (bc->cbs->on_ready != NULL)
        bc->cbs->on_ready(c, ctx, status, rsp);
}

static void conn_on_push(cimc_t *c, void *ctx, const cimc_push_t *p)
{
    bconn_t *bc = ctx;

    if (bc->cbs->on_push != NULL)
        bc->cbs->on_push(c, ctx, p);
}

static void conn_on_close(cimc_t *c, void *ctx, int status, const cim_Bye *bye)
{
    bconn_t *bc = ctx;

    if (bc->cbs->on_close != NULL)
        bc->cbs->on_close(c, ctx, status, bye);
}

static const cimc_async_cbs_t conn_cbs = {conn_on_ready, conn_on_push, conn_on_close};

/* --home-nodes: the server that is @p user's home node (core/home.h, as cimd computes it). */
static unsigned home_server(const bench_opts_t *o, const char *app, const char *user)
{
    uint32_t home = home_pick(o->home_nodes, o->nhome, app, user);
    for (unsigned i = 0; i < o->nhome; i++)
        if (o->home_nodes[i] == home)
            return i;
    return 0; /* not reached: the home is one of the list */
}

int bench_connect(bench_thr_t *t, bconn_t *bc, const cimc_async_cbs_t *cbs)
{
    bench_t *b = t->b;
    cim_LoginReq req = cim_LoginReq_init_zero;
    cimc_opts_t o;
    char src[32];
    int64_t expiry;
    int rc;

    snprintf(req.app, sizeof(req.app), "%s", b->o.app);
    bench_user(req.user, sizeof(req.user), bc->idx % b->o.users);
    snprintf(req.device_id, sizeof(req.device_id), "%s-%u", b->sc->name, bc->idx);
    req.device_kind = cim_DeviceKind_BOT;
    snprintf(req.client_version, sizeof(req.client_version), "cimbench/1");
    bc->b = b;
    bc->t = t;
    if (b->sc->login != NULL)
        b->sc->login(b, bc, &req);
    bc->srv = b->o.nhome > 0 ? home_server(&b->o, req.app, req.user) : bench_server_of(b, bc);
    bc->cbs = cbs;
    memset(&o, 0, sizeof(o));
    o.host = b->o.servers[bc->srv].host;
    o.port = b->o.servers[bc->srv].port;
    o.pinned_key = b->o.key;
    o.timeout_ms = b->o.timeout_ms;
    if (b->o.sources > 1) {
        snprintf(src, sizeof(src), "127.0.0.%u", 1 + bc->idx % b->o.sources);
        o.bind_addr = src;
    }
    /* valid for the whole run, whatever its phases take */
    expiry = (int64_t)time(NULL) + (int64_t)(b->o.duration_s + BENCH_SETUP_MAX_S) + 3600;
    if ((rc = token_mint(b->o.secret, b->o.app, req.user, expiry, req.token, sizeof(req.token))) <
        0) {
        bench_count_rc(b, rc);
        return rc;
    }
    bc->t0_ns = bench_now_ns();
    bench_ctr_add(&t->srv_connects[bc->srv], 1);
    rc = cimc_async_connect(t->al, &o, &req, &conn_cbs, bc, &bc->c);
    memset(req.token, 0, sizeof(req.token)); /* copied by libcim; do not leave it around */
    if (rc < 0) {
        bc->c = NULL;
        bench_count_rc(b, rc);
    }
    return rc;
}

void bench_login_record(bench_thr_t *t, uint64_t ns)
{
    hist_record(&t->login_iv, ns);
}

static void ctr_dec(bench_ctr_t *c)
{
    bench_ctr_add(c, UINT64_MAX); /* modulo 2^64: minus one */
}

static void pool_on_ready(cimc_t *c, void *ctx, int status, const cim_LoginRsp *rsp)
{
    bconn_t *bc = ctx;
    bench_thr_t *t = bc->t;
    bench_t *b = bc->b;

    (void)c;
    if (b->finishing)
        return;
    ctr_dec(&t->connecting);
    if (status == 0 && rsp != NULL && rsp->code == cim_Code_OK) {
        bc->open = true;
        bench_ctr_add(&t->opened, 1);
        bench_ctr_add(&t->open_now, 1);
        bench_login_record(t, bench_now_ns() - bc->t0_ns);
    } else {
        if (status < 0)
            bench_count_rc(b, status);
        else
            bench_count_code(b, rsp != NULL ? (int)rsp->code : cim_Code_INTERNAL);
        bench_ctr_add(&t->open_failed, 1);
    }
    pool_step(t);
}

static void pool_on_push(cimc_t *c, void *ctx, const cimc_push_t *p)
{
    bconn_t *bc = ctx;

    (void)c;
    if (!bc->b->finishing && bc->b->sc->on_push != NULL)
        bc->b->sc->on_push(bc->b, bc, p);
}

static void pool_on_close(cimc_t *c, void *ctx, int status, const cim_Bye *bye)
{
    bconn_t *bc = ctx;
    bench_t *b = bc->b;

    (void)c;
    bc->c = NULL;
    if (b->finishing || !bc->open)
        return;
    /* an open connection the server (or an error) ended during the run */
    bc->open = false;
    ctr_dec(&bc->t->open_now);
    bench_ctr_add(&bc->t->disconnects, 1);
    if (bye != NULL)
        bench_count_code(b, (int)bye->code);
    else if (status < 0)
        bench_count_rc(b, status);
    bench_notify(bc->t, BENCH_EV_CHECK); /* e.g. fill: every connection may be gone */
}

static const cimc_async_cbs_t pool_cbs = {pool_on_ready, pool_on_push, pool_on_close};

/* Loop thread @p t: start connects of its share while under its concurrency; report to
 * the main thread once all of them opened or failed. */
static void pool_step(bench_thr_t *t)
{
    bench_t *b = t->b;
    uint64_t mine = bench_share(b->nconns, b->nthr, t->id);

    while (!b->stopping && t->next < b->nconns && bench_ctr_get(&t->connecting) < t->conc) {
        bconn_t *bc = &b->conns[t->next];
        t->next += b->nthr;
        if (bench_connect(t, bc, &pool_cbs) < 0)
            bench_ctr_add(&t->open_failed, 1);
        else
            bench_ctr_add(&t->connecting, 1);
    }
    if (!t->pool_done && bench_ctr_get(&t->opened) + bench_ctr_get(&t->open_failed) == mine) {
        t->pool_done = true;
        atomic_fetch_add_explicit(&b->pool_threads_done, 1, memory_order_acq_rel);
        bench_notify(t, BENCH_EV_POOL);
    }
}

void bench_pool_open(bench_t *b, unsigned n)
{
    b->conns = mem_calloc((size_t)n * sizeof(*b->conns) + 1);
    b->nconns = n;
    for (unsigned i = 0; i < n; i++) {
        b->conns[i].b = b;
        b->conns[i].idx = i;
        b->conns[i].t = &b->thr[i % b->nthr];
    }
    for (unsigned i = 0; i < b->nthr; i++) {
        uint64_t conc = bench_share(b->o.concurrency, b->nthr, i);
        b->thr[i].next = i;
        b->thr[i].conc = conc != 0 ? (unsigned)conc : 1;
    }
    b->setup_t0_ns = bench_now_ns();
    bench_phase(b, "open", BENCH_SETUP_MAX_S, b->sc->stop);
    bench_post_all(b, BENCH_CMD_POOL);
}

void bench_pool_counts(const bench_t *b, bench_pool_counts_t *out)
{
    memset(out, 0, sizeof(*out));
    for (unsigned i = 0; i < b->nthr; i++) {
        const bench_thr_t *t = &b->thr[i];
        out->connecting += bench_ctr_get(&t->connecting);
        out->opened += bench_ctr_get(&t->opened);
        out->open_failed += bench_ctr_get(&t->open_failed);
        out->open_now += bench_ctr_get(&t->open_now);
        out->disconnects += bench_ctr_get(&t->disconnects);
    }
}

/* ---- phases and window ---------------------------------------------------------------- */

static void on_phase(uv_timer_t *tm)
{
    bench_t *b = tm->data;

    if (!b->finishing && b->phase_fn != NULL)
        b->phase_fn(b);
}

void bench_phase(bench_t *b, const char *name, double seconds, void (*fn)(bench_t *b))
{
    b->phase_name = name;
    b->phase_fn = fn;
    if (b->finishing)
        return;
    (void)uv_timer_stop(&b->phase); /* cannot fail on an initialised timer */
    if (fn != NULL)
        (void)uv_timer_start(&b->phase, on_phase, (uint64_t)(seconds * 1000.0 + 0.5), 0);
}

/* Sample server and bench CPU at the boundary of window b->nwcpu (index 0: the start). */
static void sample_cpu(bench_t *b)
{
    unsigned k = b->nwcpu;

    if (k > SERIES_MAX)
        return;
    b->wcpu_ok[k] =
        proc_cpu_us(0, &b->wcpu_self[k]) == 0 &&
        (b->o.npids == 0 || proc_cpu_us_sum(b->o.pids, b->o.npids, &b->wcpu_srv[k], NULL) == 0);
    b->nwcpu = k + 1;
}

/* Arm the window tick for the next boundary (a one-shot timer from the clock, so the
 * boundaries do not drift). */
static void arm_wtick(bench_t *b);

static void on_wtick(uv_timer_t *tm)
{
    bench_t *b = tm->data;

    if (b->finishing || b->w_t1_ns != 0)
        return;
    sample_cpu(b);
    arm_wtick(b);
}

static void arm_wtick(bench_t *b)
{
    uint64_t len = b->series->len_ns, next = b->w_t0_ns + (uint64_t)b->nwcpu * len;
    uint64_t now = bench_now_ns();

    if (b->nwcpu > SERIES_MAX)
        return;
    (void)uv_timer_start(&b->wtick, on_wtick, next > now ? (next - now + 999999) / 1000000 : 0,
                         0); /* cannot fail on an initialised timer */
}

void bench_window_start(bench_t *b)
{
    b->w_t0_ns = bench_now_ns();
    b->w_t1_ns = 0;
    b->w_have_srv = b->o.npids > 0 &&
                    proc_cpu_us_sum(b->o.pids, b->o.npids, &b->w_srv_cpu0, b->w_pid_cpu0) == 0;
    if (proc_cpu_us(0, &b->w_self_cpu0) < 0)
        b->w_self_cpu0 = 0;
    if (!b->series_on)
        return;
    series_start(b->series, b->w_t0_ns);
    b->nwcpu = 0;
    sample_cpu(b);
    if (!b->finishing)
        arm_wtick(b);
}

void bench_window_end(bench_t *b)
{
    if (b->w_t0_ns == 0 || b->w_t1_ns != 0)
        return;
    b->w_t1_ns = bench_now_ns();
    if (b->w_have_srv && proc_cpu_us_sum(b->o.pids, b->o.npids, &b->w_srv_cpu1, b->w_pid_cpu1) < 0)
        b->w_have_srv = false;
    if (proc_cpu_us(0, &b->w_self_cpu1) < 0)
        b->w_self_cpu1 = b->w_self_cpu0;
    if (!b->finishing)
        (void)uv_timer_stop(&b->wtick); /* cannot fail on an initialised timer */
}

void bench_hist_fold(bench_t *b, hist_t *run, hist_t *run_iv, hist_t *thr_iv, bool into_iv)
{
    uv_mutex_lock(&b->mu);
    hist_merge(run, thr_iv);
    if (into_iv)
        hist_merge(run_iv, thr_iv);
    uv_mutex_unlock(&b->mu);
    hist_reset(thr_iv);
}

uint64_t bench_rnd(uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 2685821657736338717ull;
}

double bench_window_s(const bench_t *b)
{
    uint64_t end;

    if (b->w_t0_ns == 0)
        return 0.0;
    end = b->w_t1_ns != 0 ? b->w_t1_ns : bench_now_ns();
    return (double)(end - b->w_t0_ns) / 1e9;
}

/* ---- the main loop -------------------------------------------------------------------- */

/* Every loop thread merged its interval histograms: print the line. */
static void print_progress(bench_t *b)
{
    uint64_t now = bench_now_ns();
    double dt = (double)(now - b->t_last_progress_ns) / 1e9;
    char line[512];
    int n;

    b->t_last_progress_ns = now;
    n = snprintf(line, sizeof(line), "[%6.1fs] %-5s ", (double)(now - b->t_begin_ns) / 1e9,
                 b->phase_name != NULL ? b->phase_name : "");
    if (n > 0 && (size_t)n < sizeof(line) && b->sc->progress != NULL) {
        uv_mutex_lock(&b->mu); /* the merged histograms */
        b->sc->progress(b, line + n, sizeof(line) - (size_t)n, dt > 0 ? dt : 1.0);
        uv_mutex_unlock(&b->mu);
    }
    fprintf(stderr, "%s\n", line);
}

/* Every second: ask the loop threads for a snapshot; the line follows when all took it. */
static void on_progress(uv_timer_t *tm)
{
    bench_t *b = tm->data;

    if (b->finishing || b->snap_pending)
        return;
    b->snap_pending = true;
    atomic_store_explicit(&b->snap_left, b->nthr, memory_order_release);
    bench_post_all(b, BENCH_CMD_SNAP);
}

static void on_watchdog(uv_timer_t *tm)
{
    bench_t *b = tm->data;

    fprintf(stderr, "cimbench: run overstayed its limits; ending it\n");
    b->failed = true;
    bench_finish(b);
}

static void on_sigint(uv_signal_t *s, int signum)
{
    bench_t *b = s->data;

    (void)signum;
    if (b->stopping) { /* a second ^C: end now */
        bench_finish(b);
        return;
    }
    fprintf(stderr, "cimbench: interrupted; stopping\n");
    b->stopping = true;
    b->sc->stop(b);
}

void bench_finish(bench_t *b)
{
    if (b->finishing)
        return;
    b->finishing = true;
    b->stopping = true;
    bench_window_end(b);
    if (b->sc->finish != NULL && !b->start_failed)
        b->sc->finish(b);
    uv_close((uv_handle_t *)&b->progress, NULL);
    uv_close((uv_handle_t *)&b->phase, NULL);
    uv_close((uv_handle_t *)&b->watchdog, NULL);
    uv_close((uv_handle_t *)&b->wtick, NULL);
    uv_close((uv_handle_t *)&b->sigint, NULL);
    /* each thread closes its connections; ctl closes once all of them did */
    bench_post_all(b, BENCH_CMD_FINISH);
}

/* ---- report --------------------------------------------------------------------------- */

/* The series: a row per window, and how the last full window compares with the first
 * (the summary first, then the rows). */
static void add_windows(bench_t *b, report_t *r)
{
    const series_t *s = b->series;
    uint64_t end = b->series_end_ns != 0 ? b->series_end_ns : b->w_t1_ns;
    double len = (double)s->len_ns / 1e9, first = NAN, last = NAN;
    const char *cols[REPORT_COLS_MAX];
    char names[SERIES_HISTS][2][48];
    double *rows = mem_alloc((size_t)(s->n + 1) * REPORT_COLS_MAX * sizeof(*rows));
    size_t nc = 0;
    unsigned full = 0;

    cols[nc++] = "start_s";
    cols[nc++] = "len_s";
    cols[nc++] = "ops";
    cols[nc++] = "rate";
    for (unsigned k = 0; k < SERIES_HISTS; k++) {
        if (b->series_hist[k] == NULL)
            continue;
        snprintf(names[k][0], sizeof(names[k][0]), "%s_p50_ms", b->series_hist[k]);
        snprintf(names[k][1], sizeof(names[k][1]), "%s_p99_ms", b->series_hist[k]);
        cols[nc++] = names[k][0];
        cols[nc++] = names[k][1];
    }
    cols[nc++] = "server_cpu_us_per_op";
    cols[nc++] = "bench_cpu_us_per_op";
    cols[nc++] = "full";
    for (unsigned i = 0; i < s->n; i++) {
        const series_win_t *w = &s->w[i];
        uint64_t w0 = s->t0_ns + (uint64_t)i * s->len_ns, w1 = w0 + s->len_ns;
        bool is_full = end != 0 && w1 <= end && i + 1 < SERIES_MAX;
        /* a partial window: up to its last operation (the drain's answers included) */
        double wl = is_full ? len : (w->t_last_ns > w0 ? (double)(w->t_last_ns - w0) / 1e9 : 0);
        double rate = wl > 0 ? (double)w->ops / wl : NAN;
        double *v = rows + (size_t)i * REPORT_COLS_MAX;
        size_t j = 0;

        v[j++] = (double)i * len;
        v[j++] = wl;
        v[j++] = (double)w->ops;
        v[j++] = rate;
        for (unsigned k = 0; k < SERIES_HISTS; k++) {
            if (b->series_hist[k] == NULL)
                continue;
            v[j++] = w->h[k] != NULL ? (double)hist_percentile(w->h[k], 50) / 1e6 : NAN;
            v[j++] = w->h[k] != NULL ? (double)hist_percentile(w->h[k], 99) / 1e6 : NAN;
        }
        /* CPU per op of a full window, from the samples at its two boundaries */
        if (is_full && i + 1 < b->nwcpu && b->wcpu_ok[i] && b->wcpu_ok[i + 1] && w->ops != 0) {
            v[j++] = b->o.npids > 0 ? (double)(b->wcpu_srv[i + 1] - b->wcpu_srv[i]) / (double)w->ops
                                    : NAN;
            v[j++] = (double)(b->wcpu_self[i + 1] - b->wcpu_self[i]) / (double)w->ops;
        } else {
            v[j++] = NAN;
            v[j++] = NAN;
        }
        v[j++] = is_full ? 1 : 0;
        if (is_full) {
            if (full == 0)
                first = rate;
            last = rate;
            full++;
        }
    }
    report_num(r, "windows", "length_s", len);
    report_str(r, "windows", "unit", b->tput_unit != NULL ? b->tput_unit : "");
    report_int(r, "windows", "windows_total", s->n);
    report_int(r, "windows", "windows_full", full);
    report_num(r, "windows", "first_full_rate", first);
    report_num(r, "windows", "last_full_rate", last);
    /* one full window has nothing to compare with */
    report_num(r, "windows", "ratio_last_first", full >= 2 && first > 0 ? last / first : NAN);
    report_table(r, "windows", "rows", cols, nc);
    for (unsigned i = 0; i < s->n; i++)
        report_row(r, rows + (size_t)i * REPORT_COLS_MAX);
    mem_free(rows);
}

/* Write "HOST:PORT" of server @p i (an IPv6 address in brackets) into @p out. */
static void server_name(const bench_t *b, unsigned i, char *out, size_t len)
{
    const bench_server_t *sv = &b->o.servers[i];

    snprintf(out, len, strchr(sv->host, ':') != NULL ? "[%s]:%d" : "%s:%d", sv->host, sv->port);
}

/* The servers: their list, and per server the connects and the logins that succeeded. */
static void add_servers(bench_t *b, report_t *r)
{
    static const char *const cols[] = {"server", "port", "connects", "logged_in"};
    size_t len = (size_t)b->o.nservers * (BENCH_HOST_MAX + 9) + 1, n = 0;
    char *list = mem_alloc(len);

    list[0] = '\0';
    for (unsigned i = 0; i < b->o.nservers; i++) {
        if (i > 0)
            list[n++] = ',';
        server_name(b, i, list + n, len - n);
        n += strlen(list + n);
    }
    report_int(r, "servers", "count", b->o.nservers);
    report_str(r, "servers", "list", list);
    mem_free(list);
    /* a row per server, in the order of the list */
    report_table(r, "servers", "per_server", cols, sizeof(cols) / sizeof(cols[0]));
    for (unsigned i = 0; i < b->o.nservers; i++) {
        uint64_t connects = 0, logged_in = 0;
        for (unsigned k = 0; k < b->nthr; k++) {
            connects += bench_ctr_get(&b->thr[k].srv_connects[i]);
            logged_in += bench_ctr_get(&b->thr[k].srv_logged_in[i]);
        }
        report_row(r,
                   (const double[]){i, b->o.servers[i].port, (double)connects, (double)logged_in});
    }
}

/* The server processes (--pid): CPU over the window summed, and each one's when several. */
static void add_server_cpu(bench_t *b, report_t *r, double w)
{
    static const char *const cols[] = {"pid", "cpu_us", "cpu_cores", "cpu_us_per_op"};
    char list[BENCH_SERVERS_MAX * 12];
    size_t n = 0;
    uint64_t cpu;

    if (b->o.npids == 1) {
        report_int(r, "server", "pid", b->o.pids[0]);
    } else {
        for (unsigned i = 0; i < b->o.npids; i++)
            n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%ld", i > 0 ? "," : "",
                                  (long)b->o.pids[i]);
        report_str(r, "server", "pids", list);
    }
    if (!b->w_have_srv)
        return;
    cpu = b->w_srv_cpu1 - b->w_srv_cpu0;
    report_int(r, "server", "cpu_us", (int64_t)cpu);
    report_num(r, "server", "cpu_cores", w > 0 ? (double)cpu / 1e6 / w : 0.0);
    report_num(r, "server", "cpu_us_per_op", b->ops != 0 ? (double)cpu / (double)b->ops : NAN);
    if (b->o.npids == 1)
        return;
    report_table(r, "server", "per_pid", cols, sizeof(cols) / sizeof(cols[0]));
    for (unsigned i = 0; i < b->o.npids; i++) {
        double c = (double)(b->w_pid_cpu1[i] - b->w_pid_cpu0[i]);
        report_row(r, (const double[]){(double)b->o.pids[i], c, w > 0 ? c / 1e6 / w : 0.0,
                                       b->ops != 0 ? c / (double)b->ops : NAN});
    }
}

static void add_common_report(bench_t *b, report_t *r)
{
    double w = bench_window_s(b), load1;
    long ncpu;
    proc_mem_t mem;
    bench_pool_counts_t pc;
    char key[64];

    report_str(r, NULL, "scenario", b->sc->name);
    report_num(r, NULL, "throughput", b->tput);
    report_str(r, NULL, "throughput_unit", b->tput_unit != NULL ? b->tput_unit : "");
    report_int(r, NULL, "ops", (int64_t)b->ops);
    report_str(r, NULL, "op", b->op_name != NULL ? b->op_name : "");
    report_num(r, NULL, "window_s", w);
    report_int(r, NULL, "errors_total", (int64_t)bench_errors(b));
    report_str(r, NULL, "result", b->failed ? "failed" : "ok");

    report_str(r, "params", "host", b->o.host);
    report_int(r, "params", "port", b->o.port);
    report_str(r, "params", "app", b->o.app[0] != '\0' ? b->o.app : "default");
    report_num(r, "params", "duration_s", b->o.duration_s);
    report_int(r, "params", "count", (int64_t)b->o.count);
    report_int(r, "params", "conns", b->o.conns);
    report_int(r, "params", "concurrency", b->o.concurrency);
    report_int(r, "params", "users", b->o.users);
    report_int(r, "params", "window", b->o.window);
    report_num(r, "params", "rate", b->o.rate);
    report_int(r, "params", "size", b->o.size);
    report_int(r, "params", "sources", b->o.sources);
    report_int(r, "params", "ack_every", b->o.ack_every);
    report_int(r, "params", "threads", b->nthr);
    report_num(r, "params", "window_len_s", b->o.window_len_s);
    if (strcmp(b->sc->name, "group") == 0) {
        report_int(r, "params", "groups", b->o.groups);
        report_int(r, "params", "members", b->o.members);
        report_int(r, "params", "senders", b->o.senders);
    } else if (strcmp(b->sc->name, "sync") == 0) {
        report_int(r, "params", "messages", (int64_t)b->o.messages);
        report_int(r, "params", "limit", b->o.limit);
        report_int(r, "params", "devices", b->o.devices);
    } else if (strcmp(b->sc->name, "fill") == 0) {
        report_int(r, "params", "messages", (int64_t)b->o.messages);
    }
    add_servers(b, r);

    if (b->setup_t0_ns != 0) { /* the pool was used */
        bench_pool_counts(b, &pc);
        report_int(r, "connections", "opened", (int64_t)pc.opened);
        report_int(r, "connections", "open_failed", (int64_t)pc.open_failed);
        report_int(r, "connections", "disconnects", (int64_t)pc.disconnects);
        if (b->setup_t1_ns > b->setup_t0_ns)
            report_num(r, "connections", "setup_s",
                       (double)(b->setup_t1_ns - b->setup_t0_ns) / 1e9);
    }

    if (b->login_lat.count != 0)
        report_hist(r, "latency_us", "login", &b->login_lat);

    for (unsigned i = 0; i < BENCH_CODES; i++)
        if (b->codes[i] != 0)
            report_int(r, "errors", cimc_code_str((int)i), (int64_t)b->codes[i]);
    for (unsigned i = 0; i < BENCH_RCS; i++)
        if (b->rc_cnt[i] != 0) {
            snprintf(key, sizeof(key), "%s", rc_str(b->rc_val[i]));
            report_int(r, "errors", key, (int64_t)b->rc_cnt[i]);
        }
    if (b->mismatch != 0)
        report_int(r, "errors", "mismatch", (int64_t)b->mismatch);
    if (b->unanswered != 0)
        report_int(r, "errors", "unanswered", (int64_t)b->unanswered);

    if (b->o.npids > 0)
        add_server_cpu(b, r, w);
    /* getrusage(RUSAGE_SELF): every thread of this process */
    report_int(r, "bench", "cpu_us", (int64_t)(b->w_self_cpu1 - b->w_self_cpu0));
    report_num(r, "bench", "cpu_cores",
               w > 0 ? (double)(b->w_self_cpu1 - b->w_self_cpu0) / 1e6 / w : 0.0);
    report_num(r, "bench", "cpu_us_per_op",
               b->ops != 0 ? (double)(b->w_self_cpu1 - b->w_self_cpu0) / (double)b->ops : NAN);
    report_int(r, "bench", "threads", b->nthr);
    if (proc_mem(0, &mem) == 0)
        report_int(r, "bench", "rss_bytes", (int64_t)mem.rss);
    report_int(r, "bench", "nofile", b->nofile);

    if (b->series_on && b->w_t0_ns != 0)
        add_windows(b, r);

    proc_load(&load1, &ncpu);
    report_int(r, "machine", "cpus", ncpu);
    report_num(r, "machine", "load1_end", load1);
}

/* ---- command line --------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cimbench SCENARIO --key HEX (--data DIR | --secret HEX) [options]\n"
            "\n"
            "Load generator for cimd. Every run ends by itself (--duration, at most %.0f s),\n"
            "prints a progress line to stderr every second and a report at the end (a table,\n"
            "or one JSON document with --json) on stdout. c2c, group and fill also report\n"
            "their rate per --window-s window of the run and the last full window's rate\n"
            "over the first's.\n"
            "\n"
            "Scenarios:\n",
            BENCH_DURATION_MAX_S);
    for (size_t i = 0; i < NSCENARIOS; i++)
        fprintf(f, "  %-6s %s\n", scenarios[i]->name, scenarios[i]->summary);
    fprintf(
        f,
        "\n"
        "Server and credentials:\n"
        "  --host H          server address (default 127.0.0.1); a non-loopback address is\n"
        "                    refused without --allow-remote\n"
        "  --port P          server port (default %d)\n"
        "  --hosts H:P,...   several servers (at most %d; an IPv6 address as [ADDR]:PORT)\n"
        "                    sharing one identity key and app secret, instead of --host\n"
        "                    and --port; user n connects to server n %% count (round-robin\n"
        "                    by user number: the connection index where each connection\n"
        "                    has its own user), so a user stays on one server\n"
        "  --ports P,...     the same on --host: one server per port\n"
        "  --key HEX         the server's identity key, pinned (cimctl --data DIR show-key);\n"
        "                    without it, read from DIR/identity.key when --data is given\n"
        "  --data DIR        the server's data dir: the app secret is read from it\n"
        "                    (read-only, safe while cimd runs) to mint login tokens\n"
        "  --secret HEX      the app secret instead (cimctl app show APP)\n"
        "  --app A           the app (default \"default\")\n"
        "  --allow-remote    allow a server that is not on this machine\n"
        "  --home-nodes N,...\n"
        "                    the cluster node id of each server of --hosts/--ports, in\n"
        "                    order: every user connects to its home node (the rendezvous\n"
        "                    hash of docs/SCALING.md) instead of round-robin, so that no\n"
        "                    session is relayed\n"
        "  --pid PID,...     the server's process: report its memory and CPU time; with\n"
        "                    several servers their pids, CPU summed and per pid\n"
        "\n"
        "Run:\n"
        "  --duration S      measured time in seconds (default %.0f, at most %.0f); opening\n"
        "                    connections comes first and takes at most %.0f s\n"
        "  --count N         login: logins in all (overrides --conns); c2c, group: messages\n"
        "                    in all (ends the run early); conns, sync, fill: ignored\n"
        "  --threads N       run the connections on N libuv loops in N threads (default 1;\n"
        "                    at most %d), connection i on loop i %% N, so that the bench is\n"
        "                    not the limit; results are merged and the bench's CPU is the\n"
        "                    whole process's. sync: 1 only\n"
        "  --window-s S      c2c, group, fill: cut the measured window into windows of S\n"
        "                    seconds (default %.0f) and report each one's rate, latency and\n"
        "                    CPU per op, and last/first (the ratio of the last full\n"
        "                    window's rate to the first's)\n"
        "  --conns N         login: logins in all; conns: connections held (default %d);\n"
        "                    fill: sending connections (default min(U, %d))\n"
        "  --concurrency C   connects in flight at once (default %d)\n"
        "  --users U         users u0..u(U-1): login/conns default --conns (one per\n"
        "                    connection), c2c default 100 (one connection each), fill\n"
        "                    default 1000 (random peers among them)\n"
        "  --window W        c2c, group closed loop: SENDs in flight per sending connection\n"
        "                    (default 1; fill: %d)\n"
        "  --rate R          c2c, group open loop: R messages/s in all, send times fixed by\n"
        "                    the clock and latency taken from the scheduled time (no\n"
        "                    coordinated omission); --window is then ignored\n"
        "  --size B          c2c, group, sync, fill: body bytes (default 100, at least 16: the\n"
        "                    first 8 are the send time, CLOCK_MONOTONIC ns, for the\n"
        "                    receiver's latency, the next 4 the run id)\n"
        "  --ack-every N     c2c, group: PUSH_ACK every N pushes per connection (default 64;\n"
        "                    0 off)\n"
        "  --peers any|same-server\n"
        "                    c2c: random peers among all users (default), or only among\n"
        "                    the users of the sender's own server (--hosts: servers that\n"
        "                    do not route to each other)\n"
        "  --groups G        group: groups (default %d); users g<i>m<j>, one connection each\n"
        "  --members M       group: members per group, all online (default %d); G*M\n"
        "                    connections in all\n"
        "  --senders S       group: members 0..S-1 of every group send (default 1)\n"
        "  --messages N      sync: messages pre-loaded into user syncer's timeline (default\n"
        "                    %d, at most 10,000,000); fill: messages to store\n"
        "  --limit L         sync: SyncReq.limit, messages per page (default %d, at most 500)\n"
        "  --devices K       sync: fresh devices of syncer syncing in parallel (default 1)\n"
        "  --sources N       spread connections over source addresses 127.0.0.1..N (IPv4\n"
        "                    loopback server only; default %d; 1 = no bind): each source\n"
        "                    gets its own ~28k ephemeral ports and its own share of the\n"
        "                    server's max_conns_per_ip (default 1000)\n"
        "  --timeout MS      connect+login and each answer (default %d)\n"
        "  --json            print the report as one JSON document\n"
        "  --help            this text\n"
        "  --version         print cimbench's version and exit\n"
        "\n"
        "Notes:\n"
        "  * c2c, group, sync and fill send far more than cimd's default per-connection rate\n"
        "    limit allows (send_rate 100/s, burst 200): start the server with e.g.\n"
        "    --send_rate 1000000 --send_burst 1000000, or expect RATE_LIMITED errors.\n"
        "  * fill: pre-fills a data dir through a running cimd: --conns connections log in\n"
        "    as u0.., keep --window SENDs each in flight (no latency bookkeeping) to random\n"
        "    peers among u0..u(U-1) until --messages N are stored (acknowledged OK); users\n"
        "    missing from the data dir log in once first (a recipient must exist). Runs\n"
        "    until done (--duration caps it, default %.0f s). Any error fails the run: the\n"
        "    count stored is then acked_ok.\n"
        "  * group: cimd's --max_group_size (default 2000) must be at least --members.\n"
        "    Setup logs in G*M users, creates the groups (GROUP_CREATE with up to 1000\n"
        "    members, then GROUP_ADD per 1000) and waits for their SYSTEM pushes; then\n"
        "    deliveries = acked messages x (online members - 1). The target scenario is\n"
        "    1 group of 1,000 members online; G*M must stay under the descriptor limit\n"
        "    of both processes (20,000 here).\n"
        "  * sync: the fresh devices sync the whole timeline of syncer, earlier runs' messages\n"
        "    included (reported apart): use a fresh data dir for a clean count. --duration\n"
        "    caps the sync itself (default 10 s); the pre-load comes before it.\n"
        "  * cimbench raises its RLIMIT_NOFILE to the hard limit and says how many\n"
        "    connections that allows. Server and bench each need one descriptor per\n"
        "    connection; on a machine with a hard limit of 20,000 per process, measure\n"
        "    `conns` at 15,000 (--conns 15000).\n"
        "  * conns: take the server's bytes per connection from a freshly started cimd:\n"
        "    freed heap is not given back to the system, so a second run reads ~0.\n"
        "    RSS includes the LMDB pages the logins touched (new users); the report\n"
        "    splits it into heap (anon) and mapped files (file).\n"
        "  * Several servers (--hosts, --ports): group, sync, fill and c2c --peers any send\n"
        "    between users of different servers, which only servers that route to each\n"
        "    other (a cluster) deliver; on standalone copies of one data dir use login,\n"
        "    conns or c2c --peers same-server. sync's sender is user 0, syncer user 1.\n"
        "  * Latencies are measured in this process: server and bench share the CPUs of a\n"
        "    small machine, so the bench's own CPU time (all its threads) is reported\n"
        "    beside the server's.\n"
        "\n"
        "Example:\n"
        "  cimd --data /tmp/d --listen 127.0.0.1:7500 --send_rate 1000000 --send_burst 1000000\n"
        "  cimbench c2c --port 7500 --data /tmp/d --users 200 --window 8 --pid $(pidof cimd)\n"
        "  cimbench group --port 7500 --data /tmp/d --groups 1 --members 1000 --rate 500\n"
        "  cimbench sync --port 7500 --data /tmp/d --messages 100000\n"
        "  cimbench fill --port 7500 --data /tmp/d --messages 20000000 --users 1000 --threads 2\n",
        DEF_PORT, BENCH_SERVERS_MAX, DEF_DURATION_S, BENCH_DURATION_MAX_S, BENCH_SETUP_MAX_S,
        BENCH_THREADS_MAX, DEF_WINDOW_S, DEF_CONNS, BENCH_FILL_CONNS, DEF_CONCURRENCY,
        BENCH_FILL_WINDOW, DEF_GROUPS, DEF_MEMBERS, DEF_MESSAGES, DEF_LIMIT, DEF_SOURCES,
        DEF_TIMEOUT_MS, BENCH_DURATION_MAX_S);
}

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A command-line mistake: say it in one line. @return -1. */
static int bad(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "cimbench: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see --help)\n");
    return -1;
}

static int num_u(const char *s, unsigned long lo, unsigned long hi, unsigned long *out)
{
    char *end;
    unsigned long v;

    if (s == NULL || *s == '\0' || *s == '-')
        return -1;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int num_d(const char *s, double lo, double hi, double *out)
{
    char *end;
    double v;

    if (s == NULL || *s == '\0')
        return -1;
    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static bool is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;

    if (strcmp(host, "localhost") == 0)
        return true;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}

static bool is_ipv4_loopback(const char *host)
{
    struct in_addr a4;

    return inet_pton(AF_INET, host, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

/* A number of a comma-separated list: @p len bytes at @p s. */
static int item_u(const char *s, size_t len, unsigned long lo, unsigned long hi, unsigned long *out)
{
    char buf[16];

    if (len >= sizeof(buf))
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return num_u(buf, lo, hi, out);
}

/* --hosts item @p i: "HOST:PORT", an IPv6 address as "[ADDR]:PORT". */
static int server_item(bench_opts_t *o, unsigned i, const char *s, size_t len)
{
    const char *colon = len > 0 ? memrchr(s, ':', len) : NULL, *h = s;
    size_t hlen;
    unsigned long port;

    if (colon == NULL)
        return -1;
    hlen = (size_t)(colon - s);
    if (hlen >= 2 && s[0] == '[' && s[hlen - 1] == ']') {
        h = s + 1;
        hlen -= 2;
    } else if (memchr(s, ':', hlen) != NULL) {
        return -1; /* an IPv6 address without brackets: which colon ends it? */
    }
    if (hlen == 0 || hlen >= BENCH_HOST_MAX || memchr(h, '[', hlen) != NULL ||
        memchr(h, ']', hlen) != NULL ||
        item_u(colon + 1, len - (size_t)(colon + 1 - s), 1, 65535, &port) < 0)
        return -1;
    memcpy(o->servers[i].host, h, hlen);
    o->servers[i].host[hlen] = '\0';
    o->servers[i].port = (int)port;
    return 0;
}

/* --ports item @p i: a port on --host (the host is filled in afterwards). */
static int port_item(bench_opts_t *o, unsigned i, const char *s, size_t len)
{
    unsigned long port;

    if (item_u(s, len, 1, 65535, &port) < 0)
        return -1;
    o->servers[i].port = (int)port;
    return 0;
}

/* --pid item @p i. */
static int node_item(bench_opts_t *o, unsigned i, const char *s, size_t len)
{
    unsigned long id;

    if (item_u(s, len, 0, SNOWFLAKE_NODE_MAX, &id) < 0)
        return -1;
    o->home_nodes[i] = (uint32_t)id;
    return 0;
}

static int pid_item(bench_opts_t *o, unsigned i, const char *s, size_t len)
{
    unsigned long pid;

    if (item_u(s, len, 1, 1u << 30, &pid) < 0)
        return -1;
    o->pids[i] = (pid_t)pid;
    return 0;
}

/* Split @p v, the value of option @p opt, at its commas and hand item i to @p fn (@p what
 * names one item in the error line).
 * @return how many (1..BENCH_SERVERS_MAX), or -1 after saying in one line what is wrong
 * (an empty list, an item @p fn refuses, more than BENCH_SERVERS_MAX items). */
static int parse_list(bench_opts_t *o, const char *opt, const char *what, const char *v,
                      int (*fn)(bench_opts_t *o, unsigned i, const char *s, size_t len))
{
    const char *p = v;
    unsigned n = 0;

    if (*v == '\0')
        return bad("%s wants a comma-separated list, not an empty one", opt);
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (n == BENCH_SERVERS_MAX)
            return bad("%s: more than %d entries", opt, BENCH_SERVERS_MAX);
        if (fn(o, n, p, len) < 0)
            return bad("%s: bad %s '%.*s'", opt, what, (int)len, p);
        n++;
        if (end == NULL)
            return (int)n;
        p = end + 1;
    }
}

/* The servers from --hosts, or from --host with --ports or --port; servers[0] becomes
 * o->host and o->port. @return 0, or -1 after saying why. */
static int parse_servers(bench_opts_t *o, const char *hosts, const char *ports, bool have_host,
                         bool have_port)
{
    int n;

    if (hosts != NULL) {
        if (have_host || have_port || ports != NULL)
            return bad("%s", "--hosts replaces --host, --port and --ports: give one of them");
        if ((n = parse_list(o, "--hosts", "HOST:PORT", hosts, server_item)) < 0)
            return -1;
        o->nservers = (unsigned)n;
    } else {
        if (strlen(o->host) >= BENCH_HOST_MAX)
            return bad("--host '%.40s...' is over %d bytes", o->host, BENCH_HOST_MAX - 1);
        if (ports != NULL) {
            if (have_port)
                return bad("%s", "--ports replaces --port: give one of them");
            if ((n = parse_list(o, "--ports", "port", ports, port_item)) < 0)
                return -1;
            o->nservers = (unsigned)n;
        } else {
            o->servers[0].port = o->port;
            o->nservers = 1;
        }
        for (unsigned i = 0; i < o->nservers; i++)
            snprintf(o->servers[i].host, sizeof(o->servers[i].host), "%s", o->host);
    }
    o->host = o->servers[0].host;
    o->port = o->servers[0].port;
    return 0;
}

/* The app secret from the data dir, read-only (safe while cimd runs). */
static int secret_from_data(bench_t *b)
{
    kv_t *kv = NULL;
    kv_txn_t *txn = NULL;
    int rc;

    if ((rc = kv_open(b->o.data, KV_RDONLY, &kv)) < 0)
        goto out;
    if ((rc = kv_begin(kv, KV_READ, &txn)) < 0)
        goto out;
    rc = kv_app_get(txn, b->o.app[0] != '\0' ? b->o.app : "default", b->o.secret);
out:
    if (txn != NULL)
        kv_abort(txn);
    kv_close(kv);
    return rc;
}

static int key_from_data(bench_t *b)
{
    chan_identity_t *id = NULL;
    char path[1024];
    int rc;

    if (snprintf(path, sizeof(path), "%s/identity.key", b->o.data) >= (int)sizeof(path))
        return RC_EINVAL;
    if ((rc = chan_global_init()) < 0 || (rc = chan_identity_open(path, &id)) < 0)
        return rc;
    chan_identity_public(id, b->o.key);
    chan_identity_free(id);
    return 0;
}

static int parse_args(bench_t *b, int argc, char **argv)
{
    bench_opts_t *o = &b->o;
    bool have_key = false, have_secret = false, have_sources = false;
    bool have_host = false, have_port = false, all_v4_loopback = true;
    const char *hosts = NULL, *ports = NULL;
    unsigned long u;
    double d;
    int n;

    o->host = "127.0.0.1";
    o->port = DEF_PORT;
    o->duration_s = DEF_DURATION_S;
    o->conns = DEF_CONNS;
    o->concurrency = DEF_CONCURRENCY;
    o->window = 1;
    o->size = 100;
    o->timeout_ms = DEF_TIMEOUT_MS;
    o->ack_every = 64;
    o->groups = DEF_GROUPS;
    o->members = DEF_MEMBERS;
    o->senders = 1;
    o->messages = DEF_MESSAGES;
    o->limit = DEF_LIMIT;
    o->devices = 1;
    o->threads = 1;
    o->window_len_s = DEF_WINDOW_S;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = true;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(a, "--version") == 0) {
            version_print("cimbench");
            exit(0);
        } else if (a[0] != '-') {
            if (o->scenario != NULL)
                return bad("unexpected argument '%s'", a);
            o->scenario = a;
            takes = false;
        } else if (strcmp(a, "--json") == 0) {
            o->json = true;
            takes = false;
        } else if (strcmp(a, "--allow-remote") == 0) {
            o->allow_remote = true;
            takes = false;
        } else if (v == NULL) {
            return bad("%s needs a value", a);
        } else if (strcmp(a, "--host") == 0) {
            o->host = v;
            have_host = true;
        } else if (strcmp(a, "--port") == 0) {
            if (num_u(v, 1, 65535, &u) < 0)
                return bad("bad --port '%s'", v);
            o->port = (int)u;
            have_port = true;
        } else if (strcmp(a, "--hosts") == 0) {
            hosts = v;
        } else if (strcmp(a, "--ports") == 0) {
            ports = v;
        } else if (strcmp(a, "--key") == 0) {
            if (chan_unhex(v, o->key) < 0)
                return bad("--key wants 64 hex characters, not '%s'", v);
            have_key = true;
        } else if (strcmp(a, "--secret") == 0) {
            if (chan_unhex(v, o->secret) < 0)
                return bad("--secret wants 64 hex characters, not '%s'", v);
            have_secret = true;
        } else if (strcmp(a, "--data") == 0) {
            o->data = v;
        } else if (strcmp(a, "--app") == 0) {
            if (strlen(v) > 64)
                return bad("--app '%s' is over 64 bytes", v);
            snprintf(o->app, sizeof(o->app), "%s", v);
        } else if (strcmp(a, "--duration") == 0) {
            if (num_d(v, 0.1, BENCH_DURATION_MAX_S, &d) < 0)
                return bad("--duration wants seconds in 0.1..3600, not '%s'", v);
            o->duration_s = d;
            o->have_duration = true;
        } else if (strcmp(a, "--count") == 0) {
            if (num_u(v, 1, 1000000000ul, &u) < 0)
                return bad("bad --count '%s'", v);
            o->count = u;
        } else if (strcmp(a, "--home-nodes") == 0) {
            if ((n = parse_list(o, "--home-nodes", "node id", v, node_item)) < 0)
                return -1;
            o->nhome = (unsigned)n;
        } else if (strcmp(a, "--pid") == 0) {
            if ((n = parse_list(o, "--pid", "process id", v, pid_item)) < 0)
                return -1;
            o->npids = (unsigned)n;
        } else if (strcmp(a, "--conns") == 0) {
            if (num_u(v, 1, 10000000ul, &u) < 0)
                return bad("bad --conns '%s'", v);
            o->conns = (unsigned)u;
            o->have_conns = true;
        } else if (strcmp(a, "--concurrency") == 0) {
            if (num_u(v, 1, 100000ul, &u) < 0)
                return bad("bad --concurrency '%s'", v);
            o->concurrency = (unsigned)u;
        } else if (strcmp(a, "--users") == 0) {
            if (num_u(v, 1, 10000000ul, &u) < 0)
                return bad("bad --users '%s'", v);
            o->users = (unsigned)u;
        } else if (strcmp(a, "--window") == 0) {
            if (num_u(v, 1, 100000ul, &u) < 0)
                return bad("bad --window '%s'", v);
            o->window = (unsigned)u;
            o->have_window = true;
        } else if (strcmp(a, "--rate") == 0) {
            if (num_d(v, 0.001, 1e8, &d) < 0)
                return bad("bad --rate '%s'", v);
            o->rate = d;
        } else if (strcmp(a, "--size") == 0) {
            if (num_u(v, 16, 65000, &u) < 0)
                return bad("--size wants 16..65000 bytes, not '%s'", v);
            o->size = (unsigned)u;
        } else if (strcmp(a, "--peers") == 0) {
            if (strcmp(v, "any") != 0 && strcmp(v, "same-server") != 0)
                return bad("--peers wants any or same-server, not '%s'", v);
            o->peers_local = strcmp(v, "same-server") == 0;
        } else if (strcmp(a, "--ack-every") == 0) {
            if (num_u(v, 0, 1000000ul, &u) < 0)
                return bad("bad --ack-every '%s'", v);
            o->ack_every = (unsigned)u;
        } else if (strcmp(a, "--groups") == 0) {
            if (num_u(v, 1, 100000ul, &u) < 0)
                return bad("bad --groups '%s'", v);
            o->groups = (unsigned)u;
        } else if (strcmp(a, "--members") == 0) {
            if (num_u(v, 2, 100000ul, &u) < 0)
                return bad("--members wants 2..100000, not '%s'", v);
            o->members = (unsigned)u;
        } else if (strcmp(a, "--senders") == 0) {
            if (num_u(v, 1, 100000ul, &u) < 0)
                return bad("bad --senders '%s'", v);
            o->senders = (unsigned)u;
        } else if (strcmp(a, "--messages") == 0) {
            if (num_u(v, 1, 2000000000ul, &u) < 0)
                return bad("--messages wants 1..2000000000, not '%s'", v);
            o->messages = u;
        } else if (strcmp(a, "--threads") == 0) {
            if (num_u(v, 1, BENCH_THREADS_MAX, &u) < 0)
                return bad("--threads wants 1..%d, not '%s'", BENCH_THREADS_MAX, v);
            o->threads = (unsigned)u;
        } else if (strcmp(a, "--window-s") == 0) {
            if (num_d(v, 0.1, BENCH_DURATION_MAX_S, &d) < 0)
                return bad("--window-s wants seconds in 0.1..3600, not '%s'", v);
            o->window_len_s = d;
        } else if (strcmp(a, "--limit") == 0) {
            if (num_u(v, 1, 500, &u) < 0)
                return bad("--limit wants 1..500 (the server's SYNC maximum), not '%s'", v);
            o->limit = (unsigned)u;
        } else if (strcmp(a, "--devices") == 0) {
            if (num_u(v, 1, 1000, &u) < 0)
                return bad("--devices wants 1..1000, not '%s'", v);
            o->devices = (unsigned)u;
        } else if (strcmp(a, "--sources") == 0) {
            if (num_u(v, 1, BENCH_SOURCES_MAX, &u) < 0)
                return bad("--sources wants 1..250, not '%s'", v);
            o->sources = (unsigned)u;
            have_sources = true;
        } else if (strcmp(a, "--timeout") == 0) {
            if (num_u(v, 100, 3600000ul, &u) < 0)
                return bad("bad --timeout '%s'", v);
            o->timeout_ms = (unsigned)u;
        } else {
            return bad("unknown option '%s'", a);
        }
        if (takes)
            i++;
    }
    if (o->scenario == NULL)
        return bad("%s", "which scenario?");
    for (size_t i = 0; i < NSCENARIOS; i++)
        if (strcmp(scenarios[i]->name, o->scenario) == 0)
            b->sc = scenarios[i];
    if (b->sc == NULL)
        return bad("unknown scenario '%s'", o->scenario);
    if (b->sc->start == NULL)
        return bad("scenario '%s' is not implemented yet", o->scenario);
    if (o->threads > 1 && !b->sc->threads_ok)
        return bad("scenario '%s' runs on one thread (--threads 1)", o->scenario);
    /* a fill runs until it stored what was asked: --duration only caps it */
    if (strcmp(b->sc->name, "fill") == 0 && !o->have_duration)
        o->duration_s = BENCH_DURATION_MAX_S;
    if ((o->duration_s + BENCH_DRAIN_S) / o->window_len_s + 2 > SERIES_MAX &&
        strcmp(b->sc->name, "fill") != 0)
        return bad("--duration %.0f s in --window-s %.1f s windows is more than %d windows",
                   o->duration_s, o->window_len_s, SERIES_MAX);
    if (parse_servers(o, hosts, ports, have_host, have_port) < 0)
        return -1;
    if (o->nhome > 0 && o->nhome != o->nservers)
        return bad("--home-nodes names %u nodes for %u servers: one node id per server, in "
                   "the same order", o->nhome, o->nservers);
    if (o->nhome > 0 && o->peers_local)
        return bad("%s", "--home-nodes and --peers same-server: give one of them");
    for (unsigned i = 0; i < o->nservers; i++) {
        const char *h = o->servers[i].host;
        if (!o->allow_remote && !is_loopback(h))
            return bad("refusing non-loopback host '%s' without --allow-remote", h);
        if (!is_ipv4_loopback(h) && all_v4_loopback) {
            all_v4_loopback = false;
            if (have_sources && o->sources > 1)
                return bad("--sources > 1 needs IPv4 loopback servers, not '%s'", h);
        }
    }
    if (!have_sources)
        o->sources = all_v4_loopback ? DEF_SOURCES : 1;
    if (!have_secret) {
        int rc;
        if (o->data == NULL)
            return bad("%s", "need --data DIR or --secret HEX to mint tokens");
        if ((rc = secret_from_data(b)) < 0) {
            fprintf(stderr, "cimbench: cannot read the secret of app '%s' from %s: %s\n",
                    o->app[0] != '\0' ? o->app : "default", o->data, rc_str(rc));
            return -1;
        }
    }
    if (!have_key) {
        int rc;
        if (o->data == NULL)
            return bad("%s", "need --key HEX (the server identity; cimctl show-key)");
        if ((rc = key_from_data(b)) < 0) {
            fprintf(stderr, "cimbench: no --key and cannot read %s/identity.key: %s\n", o->data,
                    rc_str(rc));
            return -1;
        }
    }
    return 0;
}

/* Raise the soft descriptor limit to the hard one; @return the limit now in force. */
static long raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1024;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0 && getrlimit(RLIMIT_NOFILE, &rl) != 0)
            return 1024;
    }
    return rl.rlim_cur == RLIM_INFINITY ? 1L << 20 : (long)rl.rlim_cur;
}

/* Prepare loop thread @p i (its loop, libcim state and wake handle), before any runs. */
static int thr_init(bench_t *b, unsigned i)
{
    bench_thr_t *t = &b->thr[i];
    int rc;

    t->b = b;
    t->id = i;
    hist_reset(&t->login_iv);
    series_acc_init(&t->acc, b->series);
    if (i == 0) {
        t->loop = &b->loop;
    } else {
        t->loop = &t->own;
        if ((rc = uv_loop_init(&t->own)) < 0) {
            fprintf(stderr, "cimbench: uv_loop_init: %s\n", uv_strerror(rc));
            return rc;
        }
    }
    if ((rc = cimc_async_loop_new(t->loop, &t->al)) < 0) {
        fprintf(stderr, "cimbench: cannot start libcim: %s\n", rc_str(rc));
        return rc;
    }
    (void)uv_async_init(t->loop, &t->wake, on_wake); /* cannot fail: an eventfd exists */
    t->wake.data = t;
    return 0;
}

int main(int argc, char **argv)
{
    bench_t *b = mem_calloc(sizeof(*b));
    report_t *r = NULL;
    char first[BENCH_HOST_MAX + 8], more[48] = "";
    double load1;
    long ncpu;
    int rc, status = 1;

    hist_reset(&b->login_lat);
    (void)signal(SIGPIPE, SIG_IGN); /* libuv writes with write(2) */
    log_set_level(LOG_LVL_WARN);
    if (uv_mutex_init(&b->mu) < 0 || uv_mutex_init(&b->err_mu) < 0) {
        fprintf(stderr, "cimbench: uv_mutex_init failed\n");
        mem_free(b);
        return 1;
    }
    b->series = mem_alloc(sizeof(*b->series));
    if (series_init(b->series, (uint64_t)(DEF_WINDOW_S * 1e9)) < 0) {
        fprintf(stderr, "cimbench: uv_mutex_init failed\n");
        exit(1);
    }
    if (parse_args(b, argc, argv) < 0)
        goto out;
    b->series->len_ns = (uint64_t)(b->o.window_len_s * 1e9);
    /* before any thread: libcim would otherwise fetch the cipher lazily on each */
    if ((rc = chan_global_init()) < 0) {
        fprintf(stderr, "cimbench: cannot initialise the crypto: %s\n", rc_str(rc));
        goto out;
    }

    b->nofile = raise_nofile();
    proc_load(&load1, &ncpu);
    server_name(b, 0, first, sizeof(first));
    if (b->o.nservers > 1)
        snprintf(more, sizeof(more), " and %u more servers", b->o.nservers - 1);
    fprintf(stderr,
            "cimbench %s: %s%s, RLIMIT_NOFILE %ld: up to %ld connections; %u loop thread%s; "
            "%ld cpus, load %.2f\n",
            b->sc->name, first, more, b->nofile, b->nofile - BENCH_FD_RESERVE, b->o.threads,
            b->o.threads == 1 ? "" : "s", ncpu, load1);
    b->run_id = (uint32_t)(bench_now_ns() ^ ((uint64_t)getpid() << 16));
    b->wcpu_srv = mem_calloc((SERIES_MAX + 1) * sizeof(*b->wcpu_srv));
    b->wcpu_self = mem_calloc((SERIES_MAX + 1) * sizeof(*b->wcpu_self));
    b->wcpu_ok = mem_calloc((SERIES_MAX + 1) * sizeof(*b->wcpu_ok));

    if ((rc = uv_loop_init(&b->loop)) < 0) {
        fprintf(stderr, "cimbench: uv_loop_init: %s\n", uv_strerror(rc));
        goto out;
    }
    b->thr = mem_calloc(b->o.threads * sizeof(*b->thr));
    b->nthr = b->o.threads;
    for (unsigned i = 0; i < b->nthr; i++)
        if (thr_init(b, i) < 0) {
            /* no loop ran yet; exit without unwinding the loops (nothing is pending) */
            fprintf(stderr, "cimbench: cannot prepare loop thread %u\n", i);
            exit(1);
        }
    (void)uv_async_init(&b->loop, &b->ctl, on_ctl); /* handles below: cannot fail */
    (void)uv_timer_init(&b->loop, &b->progress);
    (void)uv_timer_init(&b->loop, &b->phase);
    (void)uv_timer_init(&b->loop, &b->watchdog);
    (void)uv_timer_init(&b->loop, &b->wtick);
    (void)uv_signal_init(&b->loop, &b->sigint);
    b->ctl.data = b->progress.data = b->phase.data = b->watchdog.data = b->wtick.data = b;
    b->sigint.data = b;
    (void)uv_signal_start(&b->sigint, on_sigint, SIGINT);
    b->t_begin_ns = b->t_last_progress_ns = bench_now_ns();
    (void)uv_timer_start(&b->progress, on_progress, 1000, 1000);
    if (b->sc->start(b) < 0) {
        b->failed = true;
        b->start_failed = true;
        bench_finish(b);
    }
    /* after start: a scenario may set the duration (fill) */
    if (!b->finishing)
        (void)uv_timer_start(
            &b->watchdog, on_watchdog,
            (uint64_t)((BENCH_SETUP_MAX_S + b->o.duration_s + BENCH_DRAIN_S + 30) * 1000.0), 0);
    for (unsigned i = 1; i < b->nthr; i++) {
        if ((rc = uv_thread_create(&b->thr[i].tid, thr_main, &b->thr[i])) < 0) {
            fprintf(stderr, "cimbench: cannot start loop thread %u: %s\n", i, uv_strerror(rc));
            exit(1); /* threads before it run loops that would never end */
        }
        b->thr[i].tid_ok = true;
    }
    (void)uv_run(&b->loop, UV_RUN_DEFAULT); /* returns once bench_finish closed it all */
    for (unsigned i = 1; i < b->nthr; i++) {
        if (b->thr[i].tid_ok)
            (void)uv_thread_join(&b->thr[i].tid); /* cannot fail: joinable, not self */
        if (b->thr[i].close_rc < 0)
            fprintf(stderr, "cimbench: uv_loop_close (thread %u): %s\n", i,
                    uv_strerror(b->thr[i].close_rc));
    }
    if ((rc = uv_loop_close(&b->loop)) < 0)
        fprintf(stderr, "cimbench: uv_loop_close: %s\n", uv_strerror(rc));

    /* The scenario first: it settles ops and the throughput the common part prints. */
    r = report_new();
    if (b->sc->report != NULL && !b->start_failed)
        b->sc->report(b, r);
    if (b->ops == 0 && !b->failed) {
        fprintf(stderr, "cimbench: nothing succeeded\n");
        b->failed = true;
    }
    add_common_report(b, r);
    report_print(r, b->o.json, stdout);
    fflush(stdout);
    status = b->failed ? 1 : 0;
out:
    report_free(r);
    for (unsigned i = 0; i < b->nconns; i++)
        mem_free(b->conns[i].ring);
    mem_free(b->conns);
    for (unsigned i = 0; i < b->nthr; i++)
        mem_free(b->thr[i].sc);
    mem_free(b->thr);
    mem_free(b->sc_data);
    mem_free(b->wcpu_srv);
    mem_free(b->wcpu_self);
    mem_free(b->wcpu_ok);
    if (b->series != NULL)
        series_free(b->series);
    mem_free(b->series);
    uv_mutex_destroy(&b->mu);
    uv_mutex_destroy(&b->err_mu);
    mem_free(b);
    return status;
}
