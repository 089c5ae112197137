/* sc_fill: pre-fill a data directory through a running cimd, fast: --messages N direct
 * messages of --size bytes between random peers among --users U users, stored the way
 * clients store them (the wire protocol, one SEND per message, each with a client_msg_id),
 * so that the sustained benchmarks can run on a directory that already holds tens of
 * millions of messages.
 *
 * How. --conns C connections (default min(U, BENCH_FILL_CONNS); connection i is user
 * u(i % U), device "fill-<i>", on loop thread i % --threads) each keep --window W SENDs in
 * flight (default BENCH_FILL_WINDOW), every one to a random user among u0..u(U-1) other
 * than the sender, until N were sent (a shared ticket counter), then wait for the last
 * answers. No latency is recorded, and the bodies are stamped only for the client_msg_id;
 * the answers are just counted (and the series counts them per --window-s window, which
 * shows whether the store slows down as it fills).
 *
 * Recipients must exist (a SEND to an unknown user is NOT_FOUND), and a user exists once
 * it logged in: with --data, users u_C..u_(U-1) missing from the data dir (read-only, as
 * cimdump reads it) log in once, --concurrency at a time, before the fill; without it, all
 * of them do.
 *
 * The server must allow the rate: start cimd with a high --send_rate and --send_burst
 * (e.g. 10000000 each), else the fill stops at RATE_LIMITED errors. Any error fails the
 * run (exit status 1); the messages stored are then acked_ok. --duration caps the fill
 * (default: BENCH_DURATION_MAX_S). */
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "core/frame.h"
#include "core/kv.h"
#include "core/mem.h"
#include "core/rc.h"

#define CMD_ENSURE (BENCH_CMD_SC << 0) /* log the missing users in once */
#define CMD_START  (BENCH_CMD_SC << 1) /* fill */
#define CMD_STOP   (BENCH_CMD_SC << 2) /* no more SENDs */

/* One loop thread's part (counters summed by the main thread). */
typedef struct fill_thr {
    bench_ctr_t sent, send_failed, ack_ok, ack_err, lost, pushes, push_acks, stopped;
    bench_ctr_t ens_done, ens_ok; /* ensure logins finished (any outcome) / OK */
    /* ensure: its share of the missing users (entries id, id+N, … of fill_t.missing) */
    unsigned ens_next, ens_share;
    bconn_t *eslots; /* connections for the ensure logins */
    unsigned *efree; /* stack of free slots */
    unsigned nefree;
    uint8_t *body;
    uint64_t rng;
    uint64_t t_last_ack_ns;
} fill_thr_t;

typedef struct fill {
    uint64_t N;
    unsigned U, C, W;
    unsigned *missing; /* user numbers to log in once before the fill */
    unsigned nmissing;
    bool checked_data; /* the missing ones come from the data dir */
    _Atomic bool ensuring, running, draining;
    _Atomic uint64_t tickets; /* SENDs claimed */
    uint64_t ens_t0_ns, ens_t1_ns, t_over_ns;
    uint64_t ack_last, ens_last; /* progress */
} fill_t;

#define SUM(b, f) BENCH_SUM(b, fill_thr_t, f)

/* ---- the phases (main thread) --------------------------------------------------------- */

static void end(bench_t *b)
{
    bench_window_end(b);
    bench_finish(b);
}

static uint64_t inflight(const bench_t *b)
{
    uint64_t done = SUM(b, ack_ok) + SUM(b, ack_err) + SUM(b, lost);
    uint64_t sent = SUM(b, sent);

    return sent > done ? sent - done : 0;
}

static void window_over(bench_t *b)
{
    fill_t *f = b->sc_data;

    if (!f->running)
        return;
    f->running = false;
    f->draining = true; /* before CMD_STOP: see sc_c2c.c */
    bench_post_all(b, CMD_STOP);
    f->t_over_ns = bench_now_ns();
    b->series_end_ns = f->t_over_ns;
    bench_phase(b, "drain", BENCH_DRAIN_S, end);
}

static void begin(bench_t *b)
{
    fill_t *f = b->sc_data;

    bench_window_start(b);
    f->running = true;
    bench_phase(b, "fill", b->o.duration_s, window_over);
    bench_post_all(b, CMD_START);
}

static void check(bench_t *b)
{
    fill_t *f = b->sc_data;

    if (f->ensuring && SUM(b, ens_done) >= f->nmissing) {
        uint64_t ok = SUM(b, ens_ok);
        f->ensuring = false;
        f->ens_t1_ns = bench_now_ns();
        if (ok < f->nmissing) {
            fprintf(stderr, "cimbench: fill: %llu of %u users could not log in\n",
                    (unsigned long long)(f->nmissing - ok), f->nmissing);
            b->failed = true;
            end(b);
            return;
        }
        begin(b);
        return;
    }
    if (f->running) {
        bench_pool_counts_t pc;
        bench_pool_counts(b, &pc);
        if (SUM(b, sent) + SUM(b, send_failed) >= f->N && inflight(b) == 0) {
            window_over(b);
        } else if (pc.open_now == 0) {
            fprintf(stderr, "cimbench: fill: every connection closed\n");
            b->failed = true;
            window_over(b);
        }
    }
    if (f->draining && !b->finishing && SUM(b, stopped) == b->nthr && inflight(b) == 0)
        end(b);
}

/* ---- logging the missing users in (loop threads) -------------------------------------- */

static void ens_step(bench_thr_t *t);

static void ens_on_ready(cimc_t *c, void *ctx, int status, const cim_LoginRsp *rsp)
{
    bconn_t *bc = ctx;
    bench_t *b = bc->b;
    fill_thr_t *ft = bc->t->sc;

    if (b->finishing)
        return;
    if (status == 0 && rsp != NULL && rsp->code == cim_Code_OK) {
        bench_ctr_add(&ft->ens_ok, 1);
        bench_login_record(bc->t, bench_now_ns() - bc->t0_ns);
    } else if (status == 0) {
        bench_count_code(b, rsp != NULL ? (int)rsp->code : cim_Code_INTERNAL);
    } else {
        bench_count_rc(b, status);
    }
    if (status == 0)
        cimc_async_close(c); /* on_close follows */
}

static void ens_on_close(cimc_t *c, void *ctx, int status, const cim_Bye *bye)
{
    bconn_t *bc = ctx;
    bench_t *b = bc->b;
    fill_thr_t *ft = bc->t->sc;

    (void)c;
    (void)status;
    (void)bye;
    bc->c = NULL;
    if (b->finishing)
        return;
    bench_ctr_add(&ft->ens_done, 1);
    ft->efree[ft->nefree++] = (unsigned)(bc - ft->eslots);
    ens_step(bc->t);
    bench_notify(bc->t, BENCH_EV_CHECK);
}

static const cimc_async_cbs_t ens_cbs = {ens_on_ready, NULL, ens_on_close};

static void ens_step(bench_thr_t *t)
{
    bench_t *b = t->b;
    fill_t *f = b->sc_data;
    fill_thr_t *ft = t->sc;

    while (!b->stopping && ft->nefree > 0) {
        unsigned k = t->id + ft->ens_next * b->nthr;
        bconn_t *bc;
        if (k >= f->nmissing)
            return;
        ft->ens_next++;
        bc = &ft->eslots[ft->efree[--ft->nefree]];
        memset(bc, 0, sizeof(*bc));
        bc->idx = f->missing[k]; /* user u<idx>, device "fill-<idx>" */
        if (bench_connect(t, bc, &ens_cbs) < 0) {
            bench_ctr_add(&ft->ens_done, 1); /* counted by bench_connect */
            ft->efree[ft->nefree++] = (unsigned)(bc - ft->eslots);
            bench_notify(t, BENCH_EV_CHECK);
        }
    }
}

/* ---- filling (loop threads) ----------------------------------------------------------- */

static void on_ack(cimc_t *c, void *ctx, int status, uint32_t type, const uint8_t *body,
                   size_t len);

static int send_one(bench_t *b, bconn_t *bc)
{
    fill_t *f = b->sc_data;
    fill_thr_t *ft = bc->t->sc;
    cim_SendReq req = cim_SendReq_init_zero;
    cimc_bytes_t body = {ft->body, b->o.size};
    unsigned from = bc->idx % f->U, to = (unsigned)(bench_rnd(&ft->rng) % f->U);
    int rc;

    if (to == from)
        to = (to + 1) % f->U;
    bench_stamp(b, bc, ft->body, bench_now_ns(), req.client_msg_id, sizeof(req.client_msg_id));
    req.conv_type = cim_ConvType_DIRECT;
    bench_user(req.to, sizeof(req.to), to);
    req.msg_type = cim_MsgType_TEXT;
    cimc_bytes_encoder(&req.body, &body);
    rc =
        cimc_async_request(bc->c, FT_SEND, cim_SendReq_fields, &req, FT_SEND_ACK, on_ack, bc, NULL);
    if (rc < 0) {
        bench_ctr_add(&ft->send_failed, 1);
        bench_count_rc(b, rc);
        return rc;
    }
    bc->seq++;
    bench_ctr_add(&ft->sent, 1);
    return 0;
}

static bool may_send(const bench_t *b, fill_t *f, const bconn_t *bc)
{
    return f->running && !b->stopping && bc->open && bc->c != NULL &&
           atomic_fetch_add_explicit(&f->tickets, 1, memory_order_relaxed) < f->N;
}

static void on_ack(cimc_t *c, void *ctx, int status, uint32_t type, const uint8_t *body, size_t len)
{
    bconn_t *bc = ctx;
    bench_t *b = bc->b;
    fill_t *f = b->sc_data;
    fill_thr_t *ft = bc->t->sc;
    cim_SendRsp rsp = cim_SendRsp_init_zero;

    (void)c;
    (void)type;
    if (b->finishing)
        return;
    if (status < 0) {
        bench_ctr_add(&ft->lost, 1);
    } else if (cimc_decode(cim_SendRsp_fields, body, len, &rsp) < 0) {
        bench_ctr_add(&ft->ack_err, 1);
        bench_count_rc(b, RC_EPROTO);
    } else if (rsp.code != cim_Code_OK) {
        bench_ctr_add(&ft->ack_err, 1);
        bench_count_code(b, (int)rsp.code);
    } else {
        uint64_t now = bench_now_ns();
        bench_ctr_add(&ft->ack_ok, 1);
        ft->t_last_ack_ns = now;
        series_acc_op(&bc->t->acc, now, 1);
    }
    if (status == 0 && may_send(b, f, bc))
        (void)send_one(b, bc); /* a failure is counted there */
    else if (f->running && bench_ctr_get(&ft->sent) == bench_ctr_get(&ft->ack_ok) +
                                                           bench_ctr_get(&ft->ack_err) +
                                                           bench_ctr_get(&ft->lost))
        bench_notify(bc->t, BENCH_EV_CHECK); /* this thread is idle: done, or stuck */
    if (f->draining)
        bench_notify(bc->t, BENCH_EV_CHECK);
}

static void on_push(bench_t *b, bconn_t *bc, const cimc_push_t *p)
{
    fill_thr_t *ft = bc->t->sc;

    if (p->type != FT_PUSH)
        return;
    bench_ctr_add(&ft->pushes, 1);
    if (p->u.msg.msg_id > bc->push_max)
        bc->push_max = p->u.msg.msg_id;
    bench_push_ack(b, bc, &ft->push_acks);
}

static void thr_start(bench_thr_t *t)
{
    bench_t *b = t->b;
    fill_t *f = b->sc_data;

    for (unsigned w = 0; w < f->W; w++)
        for (unsigned i = t->id; i < b->nconns; i += b->nthr) {
            bconn_t *bc = &b->conns[i];
            if (may_send(b, f, bc))
                (void)send_one(b, bc); /* a failure is counted there */
        }
    bench_notify(t, BENCH_EV_CHECK); /* maybe nothing to send here */
}

static void thr_cmd(bench_thr_t *t, unsigned cmds)
{
    fill_thr_t *ft = t->sc;

    if ((cmds & CMD_ENSURE) != 0) {
        ens_step(t);
        bench_notify(t, BENCH_EV_CHECK); /* maybe nothing to do here */
    }
    if ((cmds & CMD_START) != 0)
        thr_start(t);
    if ((cmds & CMD_STOP) != 0) {
        bench_ctr_add(&ft->stopped, 1);
        bench_notify(t, BENCH_EV_CHECK);
    }
}

/* ---- scenario (main thread) ----------------------------------------------------------- */

static void setup_done(bench_t *b)
{
    fill_t *f = b->sc_data;
    bench_pool_counts_t pc;

    bench_pool_counts(b, &pc);
    if (pc.opened == 0) {
        fprintf(stderr, "cimbench: fill: no connection could log in\n");
        b->failed = true;
        end(b);
        return;
    }
    if (f->nmissing == 0) {
        begin(b);
        return;
    }
    f->ensuring = true;
    f->ens_t0_ns = bench_now_ns();
    bench_phase(b, "users", BENCH_SETUP_MAX_S, b->sc->stop);
    bench_post_all(b, CMD_ENSURE);
}

static void stop(bench_t *b)
{
    fill_t *f = b->sc_data;

    b->stopping = true;
    if (f->running)
        window_over(b);
    else if (!f->draining)
        end(b);
}

/* The users among u_from..u_(U-1) that must log in once: those not in the data dir (all
 * of them without --data). */
static int find_missing(bench_t *b, fill_t *f, unsigned from)
{
    const char *app = b->o.app[0] != '\0' ? b->o.app : "default";
    kv_t *kv = NULL;
    kv_txn_t *txn = NULL;
    char user[32];
    int rc = 0;

    f->missing = mem_alloc((size_t)(f->U > from ? f->U - from : 0) * sizeof(*f->missing) + 1);
    if (b->o.data == NULL) {
        for (unsigned i = from; i < f->U; i++)
            f->missing[f->nmissing++] = i;
        return 0;
    }
    f->checked_data = true;
    if ((rc = kv_open(b->o.data, KV_RDONLY, &kv)) < 0 || (rc = kv_begin(kv, KV_READ, &txn)) < 0)
        goto out;
    for (unsigned i = from; i < f->U; i++) {
        bench_user(user, sizeof(user), i);
        rc = kv_user_get(txn, app, user, NULL);
        if (rc == RC_ENOTFOUND)
            f->missing[f->nmissing++] = i;
        else if (rc < 0)
            goto out;
    }
    rc = 0;
out:
    if (txn != NULL)
        kv_abort(txn);
    kv_close(kv);
    if (rc < 0) {
        fprintf(stderr, "cimbench: fill: cannot read the users of %s: %s\n", b->o.data, rc_str(rc));
        mem_free(f->missing);
        f->missing = NULL;
    }
    return rc;
}

static int start(bench_t *b)
{
    fill_t *f = mem_calloc(sizeof(*f));
    int rc;

    b->sc_data = f;
    f->N = b->o.messages;
    f->U = b->o.users != 0 ? b->o.users : 1000;
    b->o.users = f->U;
    if (f->U < 2) {
        fprintf(stderr, "cimbench: fill needs --users >= 2\n");
        return -1;
    }
    f->C = b->o.have_conns ? b->o.conns : (f->U < BENCH_FILL_CONNS ? f->U : BENCH_FILL_CONNS);
    f->W = b->o.have_window ? b->o.window : BENCH_FILL_WINDOW;
    b->o.conns = f->C;
    b->o.window = f->W;
    if ((long)f->C + (long)b->o.concurrency + BENCH_FD_RESERVE > b->nofile) {
        fprintf(stderr, "cimbench: fill: --conns %u needs more descriptors than %ld\n", f->C,
                b->nofile);
        return -1;
    }
    if ((rc = find_missing(b, f, f->C < f->U ? f->C : f->U)) < 0)
        return rc;
    for (unsigned i = 0; i < b->nthr; i++) {
        fill_thr_t *ft = mem_calloc(sizeof(*ft));
        unsigned slots = (unsigned)bench_share(b->o.concurrency, b->nthr, i);
        if (slots == 0)
            slots = 1;
        ft->rng = ((uint64_t)b->run_id << 32) ^ (0x9e3779b97f4a7c15ull * (i + 1));
        ft->body = mem_alloc(b->o.size);
        memset(ft->body, 'x', b->o.size);
        ft->eslots = mem_calloc((size_t)slots * sizeof(*ft->eslots));
        ft->efree = mem_alloc((size_t)slots * sizeof(*ft->efree));
        for (unsigned k = 0; k < slots; k++)
            ft->efree[ft->nefree++] = slots - 1 - k;
        b->thr[i].sc = ft;
    }
    b->op_name = "message";
    b->tput_unit = "msgs/s";
    b->series_on = true;
    fprintf(stderr,
            "cimbench: fill: %llu messages of %u bytes, %u users (%u to log in first), "
            "%u connections x %u in flight\n",
            (unsigned long long)f->N, b->o.size, f->U, f->nmissing, f->C, f->W);
    bench_pool_open(b, f->C);
    return 0;
}

static void progress(bench_t *b, char *buf, size_t len, double dt)
{
    fill_t *f = b->sc_data;
    char r1[32];

    if (f->ensuring) {
        uint64_t done = SUM(b, ens_done);
        snprintf(buf, len, "users logged in %llu/%u (%s/s)  errors %llu", (unsigned long long)done,
                 f->nmissing, bench_si(r1, sizeof(r1), (double)(done - f->ens_last) / dt),
                 (unsigned long long)bench_errors(b));
        f->ens_last = done;
    } else if (f->running || f->draining) {
        uint64_t ok = SUM(b, ack_ok);
        double rate = (double)(ok - f->ack_last) / dt, avg = ok / bench_window_s(b);
        snprintf(buf, len, "stored %llu/%llu (%.1f%%)  %s/s  inflight %llu  errors %llu  eta %.0fs",
                 (unsigned long long)ok, (unsigned long long)f->N,
                 100.0 * (double)ok / (double)f->N, bench_si(r1, sizeof(r1), rate),
                 (unsigned long long)inflight(b), (unsigned long long)bench_errors(b),
                 avg > 0 && ok < f->N ? (double)(f->N - ok) / avg : 0.0);
        f->ack_last = ok;
    } else {
        bench_pool_counts_t pc;
        bench_pool_counts(b, &pc);
        snprintf(buf, len, "open %llu/%u  connecting %llu  failed %llu",
                 (unsigned long long)pc.open_now, b->nconns, (unsigned long long)pc.connecting,
                 (unsigned long long)pc.open_failed);
    }
}

static double secs(uint64_t t0, uint64_t t1)
{
    return t0 != 0 && t1 > t0 ? (double)(t1 - t0) / 1e9 : 0.0;
}

static void report(bench_t *b, report_t *r)
{
    fill_t *f = b->sc_data;
    uint64_t t_last = 0, ok = SUM(b, ack_ok);
    double span;

    for (unsigned i = 0; i < b->nthr; i++) {
        fill_thr_t *ft = b->thr[i].sc;
        if (ft->t_last_ack_ns > t_last)
            t_last = ft->t_last_ack_ns;
    }
    span = secs(b->w_t0_ns, t_last);
    b->ops = ok;
    b->tput = span > 0 ? (double)ok / span : 0.0;
    if (ok < f->N && !b->failed) {
        fprintf(stderr, "cimbench: fill: stored %llu of %llu messages\n", (unsigned long long)ok,
                (unsigned long long)f->N);
        b->failed = true;
    }
    if (bench_errors(b) != 0)
        b->failed = true;
    report_int(r, "fill", "messages_asked", (int64_t)f->N);
    report_int(r, "fill", "users", f->U);
    report_int(r, "fill", "conns", f->C);
    report_int(r, "fill", "window", f->W);
    report_int(r, "fill", "users_logged_in_first", f->nmissing);
    report_str(r, "fill", "users_checked_in", f->checked_data ? "data dir" : "none (all)");
    report_num(r, "fill", "users_s", secs(f->ens_t0_ns, f->ens_t1_ns));
    report_int(r, "fill", "sent", (int64_t)SUM(b, sent));
    report_int(r, "fill", "acked_ok", (int64_t)ok);
    report_int(r, "fill", "acked_error", (int64_t)SUM(b, ack_err));
    report_int(r, "fill", "lost", (int64_t)SUM(b, lost));
    report_int(r, "fill", "unanswered", (int64_t)inflight(b));
    report_int(r, "fill", "send_failed", (int64_t)SUM(b, send_failed));
    report_int(r, "fill", "pushes", (int64_t)SUM(b, pushes));
    report_num(r, "fill", "fill_s", span);
    report_num(r, "fill", "msgs_per_s", b->tput);
    if (b->w_have_srv && ok != 0)
        report_num(r, "fill", "server_cpu_us_per_message",
                   (double)(b->w_srv_cpu1 - b->w_srv_cpu0) / (double)ok);
    if (ok != 0)
        report_num(r, "fill", "bench_cpu_us_per_message",
                   (double)(b->w_self_cpu1 - b->w_self_cpu0) / (double)ok);
    mem_free(f->missing);
    f->missing = NULL;
    for (unsigned i = 0; i < b->nthr; i++) {
        fill_thr_t *ft = b->thr[i].sc;
        mem_free(ft->body);
        mem_free(ft->eslots);
        mem_free(ft->efree);
        ft->body = NULL;
        ft->eslots = NULL;
        ft->efree = NULL;
    }
}

const scenario_t sc_fill = {
    .name = "fill",
    .summary = "pre-fill a data dir: --messages N to random peers among --users U, fast",
    .start = start,
    .threads_ok = true,
    .progress = progress,
    .stop = stop,
    .setup_done = setup_done,
    .check = check,
    .thr_cmd = thr_cmd,
    .on_push = on_push,
    .report = report,
};
