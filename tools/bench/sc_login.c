/* sc_login: the handshake + login storm. --conns N logins in all (or --count N),
 * --concurrency C at a time; each connection is closed as soon as its LoginRsp arrives.
 * Latency is connect start → LoginRsp{OK}: TCP connect, the X25519/Ed25519 handshake on
 * both sides, token check and login. */
#include <stdio.h>

#include "bench.h"
#include "core/mem.h"

typedef struct login {
    unsigned total;    /* logins to do */
    unsigned started;  /* connects started (also the next login's number) */
    unsigned inflight; /* started, not yet closed */
    unsigned done;     /* closed (whatever the outcome) */
    unsigned ok, ok_last;
    uint64_t t_last_ok_ns;
    unsigned *free_slots; /* stack of free indices into b->conns */
    unsigned nfree;
} login_t;

static void end(bench_t *b)
{
    bench_window_end(b);
    bench_finish(b);
}

static void fill(bench_t *b);

static void on_ready(cimc_t *c, void *ctx, int status, const cim_LoginRsp *rsp)
{
    bconn_t *bc = ctx;
    bench_t *b = bc->b;
    login_t *l = b->sc_data;

    if (b->finishing)
        return;
    if (status == 0 && rsp != NULL && rsp->code == cim_Code_OK) {
        uint64_t now = bench_now_ns();
        hist_record(&b->login_lat, now - bc->t0_ns);
        l->ok++;
        l->t_last_ok_ns = now;
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
    login_t *l = b->sc_data;

    (void)c;
    (void)status;
    (void)bye;
    bc->c = NULL;
    if (b->finishing)
        return;
    l->inflight--;
    l->done++;
    l->free_slots[l->nfree++] = (unsigned)(bc - b->conns);
    if (l->done == l->total || (b->stopping && l->inflight == 0))
        end(b);
    else
        fill(b);
}

static const cimc_async_cbs_t login_cbs = {on_ready, NULL, on_close};

static void fill(bench_t *b)
{
    login_t *l = b->sc_data;

    while (!b->stopping && l->started < l->total && l->nfree > 0) {
        bconn_t *bc = &b->conns[l->free_slots[--l->nfree]];
        bc->idx = l->started++;
        if (bench_connect(b, bc, &login_cbs) < 0) {
            l->done++; /* counted by bench_connect */
            l->free_slots[l->nfree++] = (unsigned)(bc - b->conns);
            if (l->done == l->total) {
                end(b);
                return;
            }
            continue;
        }
        l->inflight++;
    }
}

static void stop(bench_t *b)
{
    login_t *l = b->sc_data;

    b->stopping = true;
    if (l->inflight == 0) {
        end(b);
        return;
    }
    /* the logins in flight may finish; libcim's timeout bounds each, this the lot */
    bench_phase(b, "drain", BENCH_DRAIN_S, end);
}

static int start(bench_t *b)
{
    login_t *l = mem_calloc(sizeof(*l));
    unsigned slots;

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
    b->conns = mem_calloc((size_t)slots * sizeof(*b->conns));
    b->nconns = slots;
    l->free_slots = mem_alloc((size_t)slots * sizeof(*l->free_slots));
    for (unsigned i = 0; i < slots; i++)
        l->free_slots[l->nfree++] = slots - 1 - i;
    b->op_name = "login";
    b->tput_unit = "logins/s";
    bench_window_start(b);
    bench_phase(b, "login", b->o.duration_s, stop);
    fill(b);
    return 0;
}

static void progress(bench_t *b, char *buf, size_t len, double dt)
{
    login_t *l = b->sc_data;
    char r[32];

    snprintf(buf, len, "ok %u (%s/s)  inflight %u  errors %llu  p50 %.2fms p99 %.2fms", l->ok,
             bench_si(r, sizeof(r), (double)(l->ok - l->ok_last) / dt), l->inflight,
             (unsigned long long)bench_errors(b), (double)hist_percentile(&b->login_lat, 50) / 1e6,
             (double)hist_percentile(&b->login_lat, 99) / 1e6);
    l->ok_last = l->ok;
}

static void report(bench_t *b, report_t *r)
{
    login_t *l = b->sc_data;
    double s = l->t_last_ok_ns > b->w_t0_ns ? (double)(l->t_last_ok_ns - b->w_t0_ns) / 1e9 : 0;

    b->ops = l->ok;
    b->tput = s > 0 ? (double)l->ok / s : 0.0;
    report_int(r, "login", "logins_asked", l->total);
    report_int(r, "login", "started", l->started);
    report_int(r, "login", "ok", l->ok);
    report_int(r, "login", "failed", (int64_t)(l->done - l->ok));
    report_num(r, "login", "first_to_last_ok_s", s);
    mem_free(l->free_slots);
    l->free_slots = NULL;
}

const scenario_t sc_login = {
    .name = "login",
    .summary = "handshake+login storm (--conns, --concurrency): logins/s, login latency",
    .start = start,
    .progress = progress,
    .stop = stop,
    .report = report,
};
