/* sc_login: the handshake + login storm. --conns N logins in all (or --count N),
 * --concurrency C at a time; each connection is closed as soon as its LoginRsp arrives.
 * Latency is connect start → LoginRsp{OK}: TCP connect, the X25519/Ed25519 handshake on
 * both sides, token check and login.
 *
 * Threads (--threads N): thread i does its share of the logins (login numbers i, i+N, …)
 * with its share of --concurrency, on slots of its own; the main thread sums the counts
 * and ends the run when all are done. */
#include <stdio.h>

#include "bench.h"
#include "core/mem.h"

/* One loop thread's storm. */
typedef struct login_thr {
    bench_ctr_t started, done, ok; /* started: connects begun; done: closed, any outcome */
    unsigned total;                /* its share of the logins */
    uint64_t t_last_ok_ns;
    unsigned *free_slots; /* stack of free indices into b->conns (its own slots) */
    unsigned nfree;
} login_thr_t;

typedef struct login {
    unsigned total; /* logins to do */
    uint64_t ok_last;
} login_t;

#define SUM(b, f) BENCH_SUM(b, login_thr_t, f)

static void end(bench_t *b)
{
    bench_window_end(b);
    bench_finish(b);
}

static void fill(bench_thr_t *t);

static void on_ready(cimc_t *c, void *ctx, int status, const cim_LoginRsp *rsp)
{
    bconn_t *bc = ctx;
    bench_t *b = bc->b;
    login_thr_t *lt = bc->t->sc;

    if (b->finishing)
        return;
    if (status == 0 && rsp != NULL && rsp->code == cim_Code_OK) {
        uint64_t now = bench_now_ns();
        bench_login_record(bc->t, now - bc->t0_ns);
        bench_ctr_add(&lt->ok, 1);
        lt->t_last_ok_ns = now;
    } else if (status == 0) {
        bench_count_code(b, rsp != NULL ? (int)rsp->code : cim_Code_INTERNAL);
    } else {
        bench_count_rc(b, status);
    }
    if (status == 0)
        cimc_async_close(c); /* on_close follows (after a failure it does anyway) */
}

static void on_close(cimc_t *c, void *ctx, int status, const cim_Bye *bye)
{
    bconn_t *bc = ctx;
    bench_t *b = bc->b;
    login_thr_t *lt = bc->t->sc;

    (void)c;
    (void)status;
    (void)bye;
    bc->c = NULL;
    if (b->finishing)
        return;
    bench_ctr_add(&lt->done, 1);
    lt->free_slots[lt->nfree++] = (unsigned)(bc - b->conns);
    fill(bc->t);
    bench_notify(bc->t, BENCH_EV_CHECK); /* the main thread decides whether all are done */
}

static const cimc_async_cbs_t login_cbs = {on_ready, NULL, on_close};

/* Start logins on @p t's free slots while it has some to do. */
static void fill(bench_thr_t *t)
{
    bench_t *b = t->b;
    login_thr_t *lt = t->sc;

    while (!b->stopping && bench_ctr_get(&lt->started) < lt->total && lt->nfree > 0) {
        bconn_t *bc = &b->conns[lt->free_slots[--lt->nfree]];
        bc->idx = (uint32_t)(bench_ctr_get(&lt->started) * b->nthr + t->id);
        bench_ctr_add(&lt->started, 1);
        if (bench_connect(t, bc, &login_cbs) < 0) {
            bench_ctr_add(&lt->done, 1); /* counted by bench_connect */
            lt->free_slots[lt->nfree++] = (unsigned)(bc - b->conns);
            bench_notify(t, BENCH_EV_CHECK);
        }
    }
}

static void thr_cmd(bench_thr_t *t, unsigned cmds)
{
    (void)cmds; /* BENCH_CMD_SC: begin */
    fill(t);
}

static void check(bench_t *b)
{
    login_t *l = b->sc_data;
    uint64_t done = SUM(b, done), started = SUM(b, started);

    if (done == l->total || (b->stopping && done >= started))
        end(b);
}

static void stop(bench_t *b)
{
    b->stopping = true;
    if (SUM(b, done) >= SUM(b, started)) {
        end(b);
        return;
    }
    /* the logins in flight may finish; libcim's timeout bounds each, this the lot */
    bench_phase(b, "drain", BENCH_DRAIN_S, end);
}

static int start(bench_t *b)
{
    login_t *l = mem_calloc(sizeof(*l));
    unsigned slots, next = 0;

    b->sc_data = l;
    l->total = b->o.count != 0 ? (unsigned)b->o.count : b->o.conns;
    if (b->o.users == 0)
        b->o.users = l->total;
    slots = b->o.concurrency < l->total ? b->o.concurrency : l->total;
    if ((long)slots + BENCH_FD_RESERVE > b->nofile) {
        fprintf(stderr, "cimbench: --concurrency %u needs more descriptors than %ld\n", slots,
                b->nofile);
        return -1;
    }
    if (slots < b->nthr)
        slots = b->nthr; /* a slot per thread at least */
    b->conns = mem_calloc((size_t)slots * sizeof(*b->conns));
    b->nconns = slots;
    for (unsigned i = 0; i < b->nthr; i++) {
        login_thr_t *lt = mem_calloc(sizeof(*lt));
        unsigned n = (unsigned)bench_share(slots, b->nthr, i);
        lt->total = (unsigned)bench_share(l->total, b->nthr, i);
        lt->free_slots = mem_alloc((size_t)n * sizeof(*lt->free_slots) + 1);
        for (unsigned k = 0; k < n; k++)
            lt->free_slots[lt->nfree++] = next + n - 1 - k;
        next += n;
        b->thr[i].sc = lt;
    }
    b->op_name = "login";
    b->tput_unit = "logins/s";
    bench_window_start(b);
    bench_phase(b, "login", b->o.duration_s, stop);
    bench_post_all(b, BENCH_CMD_SC);
    return 0;
}

static void progress(bench_t *b, char *buf, size_t len, double dt)
{
    login_t *l = b->sc_data;
    uint64_t ok = SUM(b, ok), done = SUM(b, done), started = SUM(b, started);
    char r[32];

    snprintf(buf, len, "ok %llu (%s/s)  inflight %llu  errors %llu  p50 %.2fms p99 %.2fms",
             (unsigned long long)ok, bench_si(r, sizeof(r), (double)(ok - l->ok_last) / dt),
             (unsigned long long)(started - done), (unsigned long long)bench_errors(b),
             (double)hist_percentile(&b->login_lat, 50) / 1e6,
             (double)hist_percentile(&b->login_lat, 99) / 1e6);
    l->ok_last = ok;
}

static void report(bench_t *b, report_t *r)
{
    login_t *l = b->sc_data;
    uint64_t t_last = 0, ok = SUM(b, ok);
    double s;

    for (unsigned i = 0; i < b->nthr; i++) {
        login_thr_t *lt = b->thr[i].sc;
        if (lt->t_last_ok_ns > t_last)
            t_last = lt->t_last_ok_ns;
    }
    s = t_last > b->w_t0_ns ? (double)(t_last - b->w_t0_ns) / 1e9 : 0;
    b->ops = ok;
    b->tput = s > 0 ? (double)ok / s : 0.0;
    report_int(r, "login", "logins_asked", l->total);
    report_int(r, "login", "started", (int64_t)SUM(b, started));
    report_int(r, "login", "ok", (int64_t)ok);
    report_int(r, "login", "failed", (int64_t)(SUM(b, done) - ok));
    report_num(r, "login", "first_to_last_ok_s", s);
    for (unsigned i = 0; i < b->nthr; i++) {
        login_thr_t *lt = b->thr[i].sc;
        mem_free(lt->free_slots);
        lt->free_slots = NULL;
    }
}

const scenario_t sc_login = {
    .name = "login",
    .summary = "handshake+login storm (--conns, --concurrency): logins/s, login latency",
    .start = start,
    .threads_ok = true,
    .progress = progress,
    .stop = stop,
    .check = check,
    .thr_cmd = thr_cmd,
    .report = report,
};
