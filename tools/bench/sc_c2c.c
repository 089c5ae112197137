/* sc_c2c: one-to-one messages. --users U users, one connection each (device
 * "c2c-<i>"), every one sending TEXT messages of --size bytes to random other users.
 *
 * Closed loop (default): every connection keeps --window SENDs in flight and sends the
 * next one as each SEND_ACK arrives. Open loop (--rate R): sends are scheduled by the
 * clock at R/s in all, round-robin over the senders; every latency is taken from the
 * *scheduled* time, so a server that stalls is charged for the whole stall (no
 * coordinated omission). libuv timers have millisecond resolution, which would add up to
 * 2 ms to every open-loop latency, so the scheduler is a timerfd (ns resolution) polled by
 * the loop, re-armed for the next due send but at most every TICK_MIN_NS (sends due
 * meanwhile go out together); how late it actually sent is reported apart (sched_lag).
 *
 * Latencies: send → SEND_ACK, measured by the sender (answers on a connection come in
 * request order, so each connection keeps its send times in a FIFO), and send → PUSH,
 * measured by the receiver from the first 8 bytes of the body (CLOCK_MONOTONIC ns; same
 * process, same clock). Bytes 8..11 carry the run id, so pushes of other runs or clients
 * are counted as stray instead of timed.
 *
 * After the window (--duration or --count messages) nothing new is sent; the answers and
 * pushes still due are awaited for at most BENCH_DRAIN_S. Throughput is the SENDs
 * acknowledged OK over the time from the window's start to the last of those acks; the
 * series (series.h) counts them per --window-s window, with the ack and push latencies.
 *
 * Servers (--hosts): user i connects to server i % S. With --peers same-server each sender
 * picks its peers among the users of its own server only (standalone servers, which do
 * not route to each other: every message stays on one); by default among all.
 *
 * Threads (--threads N): connection i lives on loop thread i % N and sends from there;
 * peers are chosen among all open connections (a user name is all a SEND needs), so a
 * push may arrive on another thread than its sender's: the receiver times it from the
 * body's stamp (one clock). Counters are per thread (c2c_thr_t) and summed by the main
 * thread, which decides when the window is over and when the drain is done (check). In
 * open loop each thread schedules its own share of --rate (and of --count) over its own
 * connections. */
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "core/frame.h"
#include "core/mem.h"
#include "core/rc.h"

#define CMD_START (BENCH_CMD_SC << 0) /* the window opened: send */
#define CMD_STOP  (BENCH_CMD_SC << 1) /* the window closed: stop the scheduler */

/* One loop thread's part: touched only by it, but for the bench_ctr_t counters the main
 * thread sums while the run goes on. */
typedef struct c2c_thr {
    bench_ctr_t sent, send_failed;
    bench_ctr_t ack_ok, ack_err, lost; /* lost: the connection ended first */
    bench_ctr_t pushes, pushes_timed, stray, events, push_acks;
    bench_ctr_t sched_over; /* open loop: 1 once its scheduler is done (count reached) */
    bench_ctr_t stopped;    /* 1 once it handled CMD_STOP: it sends nothing more */
    unsigned *mine;         /* its connections open when the window started */
    unsigned nmine;
    uint8_t *body; /* body scratch, --size bytes */
    uint64_t rng;
    bench_sched_t sched;    /* open loop: the thread's scheduler */
    uint64_t t_last_ack_ns; /* read by the main thread after the threads ended */
    hist_t ack_iv, push_iv; /* since the last snapshot */
} c2c_thr_t;

typedef struct c2c {
    bool open_loop;
    _Atomic bool running;  /* the window is open: sends go out */
    _Atomic bool draining; /* after the window, waiting for answers and pushes */
    unsigned *open;        /* indices of the connections open when the window started */
    unsigned nopen;
    /* --peers same-server: the open connections by server, server k's at
     * peers[peer_off[k] .. peer_off[k + 1] - 1] */
    unsigned *peers;
    unsigned peer_off[BENCH_SERVERS_MAX + 1];
    _Atomic uint64_t tickets; /* --count, closed loop: sends claimed in all */

    uint64_t sent_window, ack_ok_window;          /* when the window closed */
    uint64_t t_over_ns;                           /* when the window closed */
    uint64_t sent_last, ack_ok_last, pushes_last; /* progress */
    hist_t ack, push;                             /* whole run (merged; under b->mu) */
    hist_t ack_iv, push_iv;                       /* since the last progress line */
} c2c_t;

#define SUM(b, f) BENCH_SUM(b, c2c_thr_t, f)

/* ---- the window (main thread) --------------------------------------------------------- */

static void end(bench_t *b)
{
    bench_window_end(b);
    bench_finish(b);
}

/* Requests sent and not yet answered, over every thread. The answers are read before the
 * sends: both only grow, so this never reads less than is truly in flight. */
static uint64_t inflight(const bench_t *b)
{
    uint64_t done = SUM(b, ack_ok) + SUM(b, ack_err) + SUM(b, lost);
    uint64_t sent = SUM(b, sent);

    return sent > done ? sent - done : 0;
}

static void window_over(bench_t *b);

/* A thread moved something: is the window or the drain over? */
static void check(bench_t *b)
{
    c2c_t *s = b->sc_data;

    if (s->running && b->o.count != 0) {
        bool over;
        if (s->open_loop)
            over = SUM(b, sched_over) == b->nthr && inflight(b) == 0;
        else
            over = SUM(b, sent) + SUM(b, send_failed) >= b->o.count && inflight(b) == 0;
        if (over)
            window_over(b);
    }
    /* every thread stopped sending (a SEND decided just before the window closed is
     * counted), every answer in (acks final), then every push of an acked message */
    if (s->draining && !b->finishing && SUM(b, stopped) == b->nthr && inflight(b) == 0 &&
        SUM(b, pushes_timed) >= SUM(b, ack_ok))
        end(b);
}

/* No new sends from now on. */
static void window_over(bench_t *b)
{
    c2c_t *s = b->sc_data;

    if (!s->running)
        return;
    s->running = false;
    /* draining before the threads hear CMD_STOP: every answer a thread handles after it
     * notifies; the ones before are covered by the check its CMD_STOP causes */
    s->draining = true;
    bench_post_all(b, CMD_STOP);
    s->t_over_ns = bench_now_ns();
    b->series_end_ns = s->t_over_ns;
    s->sent_window = SUM(b, sent);
    s->ack_ok_window = SUM(b, ack_ok);
    bench_phase(b, "drain", BENCH_DRAIN_S, end);
    check(b);
}

/* ---- sending (loop threads) ----------------------------------------------------------- */

static void on_ack(cimc_t *c, void *ctx, int status, uint32_t type, const uint8_t *body,
                   size_t len);

/* One SEND from @p bc, its latency counted from @p t_ns. */
static int send_one(bench_t *b, bconn_t *bc, uint64_t t_ns)
{
    c2c_t *s = b->sc_data;
    c2c_thr_t *ts = bc->t->sc;
    cim_SendReq req = cim_SendReq_init_zero;
    cimc_bytes_t body = {ts->body, b->o.size};
    const unsigned *peers = s->open;
    unsigned n = s->nopen, r;
    bconn_t *to;
    int rc;

    if (s->peers != NULL) {
        peers = s->peers + s->peer_off[bc->srv];
        n = s->peer_off[bc->srv + 1] - s->peer_off[bc->srv];
    }
    r = (unsigned)(bench_rnd(&ts->rng) % n);
    to = &b->conns[peers[r]];
    if (to == bc)
        to = &b->conns[peers[(r + 1) % n]];
    bench_stamp(b, bc, ts->body, t_ns, req.client_msg_id, sizeof(req.client_msg_id));
    req.conv_type = cim_ConvType_DIRECT;
    bench_user(req.to, sizeof(req.to), to->idx % b->o.users);
    req.msg_type = cim_MsgType_TEXT;
    cimc_bytes_encoder(&req.body, &body);
    rc =
        cimc_async_request(bc->c, FT_SEND, cim_SendReq_fields, &req, FT_SEND_ACK, on_ack, bc, NULL);
    if (rc < 0) {
        bench_ctr_add(&ts->send_failed, 1);
        bench_count_rc(b, rc);
        return rc;
    }
    bench_ring_push(bc, t_ns);
    bc->seq++;
    bench_ctr_add(&ts->sent, 1);
    return 0;
}

/* Closed loop: may @p bc send another? Claims one of --count's tickets when it may. */
static bool may_send(const bench_t *b, c2c_t *s, const bconn_t *bc)
{
    if (!s->running || b->stopping || !bc->open || bc->c == NULL)
        return false;
    return b->o.count == 0 ||
           atomic_fetch_add_explicit(&s->tickets, 1, memory_order_relaxed) < b->o.count;
}

static uint64_t thr_inflight(const c2c_thr_t *ts)
{
    return bench_ctr_get(&ts->sent) - bench_ctr_get(&ts->ack_ok) - bench_ctr_get(&ts->ack_err) -
           bench_ctr_get(&ts->lost);
}

static void on_ack(cimc_t *c, void *ctx, int status, uint32_t type, const uint8_t *body, size_t len)
{
    bconn_t *bc = ctx;
    bench_t *b = bc->b;
    c2c_t *s = b->sc_data;
    c2c_thr_t *ts = bc->t->sc;
    cim_SendRsp rsp = cim_SendRsp_init_zero;
    uint64_t t0 = 0, now = bench_now_ns();
    bool have_t0 = bench_ring_pop(bc, &t0);

    (void)c;
    (void)type;
    if (b->finishing)
        return;
    if (status < 0) {
        bench_ctr_add(&ts->lost, 1);
    } else if (cimc_decode(cim_SendRsp_fields, body, len, &rsp) < 0) {
        bench_ctr_add(&ts->ack_err, 1);
        bench_count_rc(b, RC_EPROTO);
    } else if (rsp.code != cim_Code_OK) {
        bench_ctr_add(&ts->ack_err, 1);
        bench_count_code(b, (int)rsp.code);
    } else {
        bench_ctr_add(&ts->ack_ok, 1);
        ts->t_last_ack_ns = now;
        series_acc_op(&bc->t->acc, now, 1);
        if (have_t0 && now >= t0) {
            hist_record(&ts->ack_iv, now - t0);
            series_acc_lat(&bc->t->acc, now, 0, now - t0);
        }
    }
    if (!s->open_loop && status == 0) {
        if (may_send(b, s, bc))
            (void)send_one(b, bc, bench_now_ns()); /* a failure is counted there */
        else if (s->running && b->o.count != 0 && thr_inflight(ts) == 0)
            bench_notify(bc->t, BENCH_EV_CHECK); /* maybe every ticket is answered */
    }
    if (s->draining)
        bench_notify(bc->t, BENCH_EV_CHECK);
}

static void on_push(bench_t *b, bconn_t *bc, const cimc_push_t *p)
{
    c2c_t *s = b->sc_data;
    c2c_thr_t *ts = bc->t->sc;
    uint64_t now, lat;

    if (p->type == FT_EVENT) {
        bench_ctr_add(&ts->events, 1);
        return;
    }
    if (p->type != FT_PUSH)
        return;
    bench_ctr_add(&ts->pushes, 1);
    if (bench_push_timed(b, p, &now, &lat)) {
        bench_ctr_add(&ts->pushes_timed, 1);
        hist_record(&ts->push_iv, lat);
        series_acc_lat(&bc->t->acc, now, 1, lat);
    } else {
        bench_ctr_add(&ts->stray, 1);
    }
    if (p->u.msg.msg_id > bc->push_max)
        bc->push_max = p->u.msg.msg_id;
    bench_push_ack(b, bc, &ts->push_acks);
    if (s->draining)
        bench_notify(bc->t, BENCH_EV_CHECK);
}

static void sched_over(bench_sched_t *sc)
{
    c2c_thr_t *ts = sc->t->sc;

    bench_ctr_add(&ts->sched_over, 1);
    bench_notify(sc->t, BENCH_EV_CHECK);
}

/* The window opened (CMD_START): this thread's connections start sending. */
static void thr_start(bench_thr_t *t)
{
    bench_t *b = t->b;
    c2c_t *s = b->sc_data;
    c2c_thr_t *ts = t->sc;
    uint64_t now;
    int rc;

    ts->mine = mem_alloc((size_t)s->nopen * sizeof(*ts->mine) + 1);
    for (unsigned i = 0; i < s->nopen; i++)
        if (b->conns[s->open[i]].t == t)
            ts->mine[ts->nmine++] = s->open[i];
    if (s->open_loop) {
        if ((rc = bench_sched_init(t, &ts->sched, true, b->o.rate / b->nthr,
                                   bench_share(b->o.count, b->nthr, t->id))) < 0) {
            bench_fail(t);
            return;
        }
        bench_sched_start(&ts->sched, &s->running, ts->mine, ts->nmine, send_one, sched_over);
        return;
    }
    now = bench_now_ns();
    for (unsigned w = 0; w < b->o.window; w++)
        for (unsigned i = 0; i < ts->nmine; i++) {
            bconn_t *bc = &b->conns[ts->mine[i]];
            if (may_send(b, s, bc))
                (void)send_one(b, bc, now); /* a failure is counted there */
        }
    if (b->o.count != 0 && thr_inflight(ts) == 0)
        bench_notify(t, BENCH_EV_CHECK);
}

static void thr_cmd(bench_thr_t *t, unsigned cmds)
{
    c2c_thr_t *ts = t->sc;

    if ((cmds & CMD_START) != 0)
        thr_start(t);
    if ((cmds & CMD_STOP) != 0) {
        bench_sched_stop(&ts->sched);
        bench_ctr_add(&ts->stopped, 1);
        bench_notify(t, BENCH_EV_CHECK);
    }
}

static void merge_iv(bench_thr_t *t, bool into_iv)
{
    c2c_t *s = t->b->sc_data;
    c2c_thr_t *ts = t->sc;

    bench_hist_fold(t->b, &s->ack, &s->ack_iv, &ts->ack_iv, into_iv);
    bench_hist_fold(t->b, &s->push, &s->push_iv, &ts->push_iv, into_iv);
}

static void thr_snap(bench_thr_t *t)
{
    merge_iv(t, true);
}

static void thr_finish(bench_thr_t *t)
{
    c2c_thr_t *ts = t->sc;

    merge_iv(t, false);
    bench_sched_close(&ts->sched);
}

/* ---- setup and stop (main thread) ----------------------------------------------------- */

/* --peers same-server: sort the open connections by server (s->peers, s->peer_off).
 * @return 0, or -1 after saying which server has a single user logged in (it would have
 * no peer; a server with none sends nothing). */
static int group_by_server(bench_t *b, c2c_t *s)
{
    unsigned S = b->o.nservers, at[BENCH_SERVERS_MAX];

    memset(s->peer_off, 0, sizeof(s->peer_off));
    for (unsigned i = 0; i < s->nopen; i++)
        s->peer_off[bench_server_of(b, &b->conns[s->open[i]]) + 1]++;
    for (unsigned k = 0; k < S; k++) {
        unsigned n = s->peer_off[k + 1];
        if (n == 1) {
            fprintf(stderr,
                    "cimbench: c2c --peers same-server: server %s:%d has 1 user logged in, "
                    "needs 2 or more\n",
                    b->o.servers[k].host, b->o.servers[k].port);
            return -1;
        }
        s->peer_off[k + 1] += s->peer_off[k];
        at[k] = s->peer_off[k];
    }
    s->peers = mem_alloc((size_t)s->nopen * sizeof(*s->peers) + 1);
    for (unsigned i = 0; i < s->nopen; i++)
        s->peers[at[bench_server_of(b, &b->conns[s->open[i]])]++] = s->open[i];
    return 0;
}

static void setup_done(bench_t *b)
{
    c2c_t *s = b->sc_data;

    s->open = mem_alloc((size_t)b->nconns * sizeof(*s->open) + 1);
    for (unsigned i = 0; i < b->nconns; i++)
        if (b->conns[i].open)
            s->open[s->nopen++] = i;
    if (s->nopen < 2) {
        fprintf(stderr, "cimbench: c2c needs at least 2 users logged in, has %u\n", s->nopen);
        b->failed = true;
        end(b);
        return;
    }
    if (b->o.peers_local && group_by_server(b, s) < 0) {
        b->failed = true;
        end(b);
        return;
    }
    bench_window_start(b);
    s->running = true;
    bench_phase(b, "run", b->o.duration_s, window_over);
    bench_post_all(b, CMD_START);
}

static void stop(bench_t *b)
{
    c2c_t *s = b->sc_data;

    b->stopping = true;
    if (s->running)
        window_over(b);
    else if (!s->draining)
        end(b); /* still opening connections */
}

static int start(bench_t *b)
{
    c2c_t *s = mem_calloc(sizeof(*s));

    b->sc_data = s;
    if (b->o.users == 0)
        b->o.users = 100;
    if (b->o.users < 2) {
        fprintf(stderr, "cimbench: c2c needs --users >= 2\n");
        return -1;
    }
    if (b->o.peers_local && b->o.users < 2 * b->o.nservers) {
        fprintf(stderr, "cimbench: c2c --peers same-server needs --users >= 2 per server (%u)\n",
                2 * b->o.nservers);
        return -1;
    }
    if ((long)b->o.users + BENCH_FD_RESERVE > b->nofile) {
        fprintf(stderr, "cimbench: --users %u needs more descriptors than %ld\n", b->o.users,
                b->nofile);
        return -1;
    }
    hist_reset(&s->ack);
    hist_reset(&s->push);
    hist_reset(&s->ack_iv);
    hist_reset(&s->push_iv);
    s->open_loop = b->o.rate > 0;
    for (unsigned i = 0; i < b->nthr; i++) {
        c2c_thr_t *ts = mem_calloc(sizeof(*ts));
        ts->rng = ((uint64_t)b->run_id << 32) ^ (0x9e3779b97f4a7c15ull * (i + 1));
        ts->body = mem_alloc(b->o.size);
        memset(ts->body, 'x', b->o.size);
        ts->sched.tfd = -1;
        hist_reset(&ts->ack_iv);
        hist_reset(&ts->push_iv);
        hist_reset(&ts->sched.lag);
        b->thr[i].sc = ts;
    }
    b->op_name = "message";
    b->tput_unit = "msgs/s";
    b->series_on = true;
    b->series_hist[0] = "ack";
    b->series_hist[1] = "push";
    bench_pool_open(b, b->o.users); /* user i on connection i */
    return 0;
}

static void progress(bench_t *b, char *buf, size_t len, double dt)
{
    c2c_t *s = b->sc_data;
    uint64_t sent = SUM(b, sent), ack_ok = SUM(b, ack_ok), pushes = SUM(b, pushes);
    char r1[32], r2[32], r3[32];

    if (!s->running && !s->draining) {
        bench_pool_counts_t pc;
        bench_pool_counts(b, &pc);
        snprintf(buf, len, "open %llu/%u  connecting %llu  failed %llu",
                 (unsigned long long)pc.open_now, b->nconns, (unsigned long long)pc.connecting,
                 (unsigned long long)pc.open_failed);
        return;
    }
    snprintf(buf, len,
             "sent %s/s  ok %s/s  push %s/s  inflight %llu  err %llu  "
             "ack p50 %.2f p99 %.2f  push p50 %.2f p99 %.2f ms",
             bench_si(r1, sizeof(r1), (double)(sent - s->sent_last) / dt),
             bench_si(r2, sizeof(r2), (double)(ack_ok - s->ack_ok_last) / dt),
             bench_si(r3, sizeof(r3), (double)(pushes - s->pushes_last) / dt),
             (unsigned long long)inflight(b), (unsigned long long)bench_errors(b),
             (double)hist_percentile(&s->ack_iv, 50) / 1e6,
             (double)hist_percentile(&s->ack_iv, 99) / 1e6,
             (double)hist_percentile(&s->push_iv, 50) / 1e6,
             (double)hist_percentile(&s->push_iv, 99) / 1e6);
    s->sent_last = sent;
    s->ack_ok_last = ack_ok;
    s->pushes_last = pushes;
    hist_reset(&s->ack_iv);
    hist_reset(&s->push_iv);
}

/* ---- report (main thread, the loop threads ended) ------------------------------------- */

static void report(bench_t *b, report_t *r)
{
    c2c_t *s = b->sc_data;
    uint64_t t_last_ack = 0, skipped = 0, ack_ok = SUM(b, ack_ok);
    int64_t behind = 0;
    hist_t *lag = mem_alloc(sizeof(*lag));
    double span, win;

    hist_reset(lag);
    for (unsigned i = 0; i < b->nthr; i++) {
        c2c_thr_t *ts = b->thr[i].sc;
        if (ts->t_last_ack_ns > t_last_ack)
            t_last_ack = ts->t_last_ack_ns;
    }
    span =
        t_last_ack > b->w_t0_ns && b->w_t0_ns != 0 ? (double)(t_last_ack - b->w_t0_ns) / 1e9 : 0.0;
    win = s->t_over_ns > b->w_t0_ns && b->w_t0_ns != 0 ? (double)(s->t_over_ns - b->w_t0_ns) / 1e9
                                                       : 0.0;
    for (unsigned i = 0; i < b->nthr; i++) {
        c2c_thr_t *ts = b->thr[i].sc;
        skipped += ts->sched.skipped;
        behind += bench_sched_behind(&ts->sched, win);
        hist_merge(lag, &ts->sched.lag);
    }
    b->ops = ack_ok;
    b->tput = span > 0 ? (double)ack_ok / span : 0.0;
    report_str(r, "c2c", "mode", s->open_loop ? "open" : "closed");
    report_str(r, "c2c", "peers", b->o.peers_local ? "same-server" : "any");
    report_int(r, "c2c", "users_open", s->nopen);
    if (s->open_loop)
        report_num(r, "c2c", "offered_rate", b->o.rate);
    report_int(r, "c2c", "sent", (int64_t)SUM(b, sent));
    report_int(r, "c2c", "acked_ok", (int64_t)ack_ok);
    report_int(r, "c2c", "acked_error", (int64_t)SUM(b, ack_err));
    report_int(r, "c2c", "lost", (int64_t)SUM(b, lost));
    /* still in flight when the drain ended (the server was that far behind) */
    report_int(r, "c2c", "unanswered", (int64_t)inflight(b));
    report_int(r, "c2c", "send_failed", (int64_t)SUM(b, send_failed));
    if (s->open_loop) {
        report_int(r, "c2c", "skipped", (int64_t)skipped);
        /* due by the clock but never sent: the bench itself fell behind (see sched_lag) */
        report_int(r, "c2c", "behind_schedule", behind);
    }
    report_int(r, "c2c", "pushes", (int64_t)SUM(b, pushes));
    report_int(r, "c2c", "pushes_timed", (int64_t)SUM(b, pushes_timed));
    report_int(r, "c2c", "pushes_stray", (int64_t)SUM(b, stray));
    report_int(r, "c2c", "events", (int64_t)SUM(b, events));
    report_int(r, "c2c", "push_acks_sent", (int64_t)SUM(b, push_acks));
    report_int(r, "c2c", "sent_in_window", (int64_t)s->sent_window);
    report_int(r, "c2c", "acked_ok_in_window", (int64_t)s->ack_ok_window);
    report_num(r, "c2c", "window_s", win);
    if (win > 0)
        report_num(r, "c2c", "acked_ok_per_s_in_window", (double)s->ack_ok_window / win);
    report_num(r, "c2c", "first_send_to_last_ack_s", span);
    /* CPU per message side by side (also server.cpu_us_per_op / bench.cpu_us_per_op) */
    if (b->w_have_srv && ack_ok != 0)
        report_num(r, "c2c", "server_cpu_us_per_message",
                   (double)(b->w_srv_cpu1 - b->w_srv_cpu0) / (double)ack_ok);
    if (ack_ok != 0)
        report_num(r, "c2c", "bench_cpu_us_per_message",
                   (double)(b->w_self_cpu1 - b->w_self_cpu0) / (double)ack_ok);
    report_hist(r, "latency_us", "send_ack", &s->ack);
    report_hist(r, "latency_us", "send_push", &s->push);
    if (s->open_loop)
        report_hist(r, "latency_us", "sched_lag", lag);
    mem_free(lag);
    mem_free(s->open);
    s->open = NULL;
    mem_free(s->peers);
    s->peers = NULL;
    for (unsigned i = 0; i < b->nthr; i++) {
        c2c_thr_t *ts = b->thr[i].sc;
        mem_free(ts->mine);
        mem_free(ts->body);
        ts->mine = NULL;
        ts->body = NULL;
    }
}

const scenario_t sc_c2c = {
    .name = "c2c",
    .summary = "direct messages, closed (--window) or open loop (--rate): ack/push latency",
    .start = start,
    .threads_ok = true,
    .progress = progress,
    .stop = stop,
    .setup_done = setup_done,
    .check = check,
    .thr_cmd = thr_cmd,
    .thr_snap = thr_snap,
    .thr_finish = thr_finish,
    .on_push = on_push,
    .report = report,
};
