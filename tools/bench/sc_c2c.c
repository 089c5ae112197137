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
 * acknowledged OK over the time from the window's start to the last of those acks. */
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "core/frame.h"
#include "core/mem.h"
#include "core/rc.h"

typedef struct c2c {
    bool open_loop;
    bool running;   /* the window is open: sends go out */
    bool draining;  /* after the window, waiting for answers and pushes */
    unsigned *open; /* indices of the connections open when the window started */
    unsigned nopen;
    uint8_t *body; /* body scratch, --size bytes */
    uint64_t rng;
    bench_sched_t sched; /* open loop: the scheduler */

    uint64_t sent, send_failed;
    uint64_t ack_ok, ack_err, lost;      /* lost: the connection ended first */
    uint64_t pushes, pushes_timed, stray, events, push_acks;
    uint64_t sent_window, ack_ok_window; /* when the window closed */
    uint64_t t_last_ack_ns;
    uint64_t t_over_ns;                           /* when the window closed */
    uint64_t sent_last, ack_ok_last, pushes_last; /* progress */
    hist_t ack, push;                             /* whole run */
    hist_t ack_iv, push_iv;                       /* since the last progress line */
} c2c_t;

static uint64_t rnd(c2c_t *s)
{
    /* xorshift64*: plenty for choosing peers */
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return s->rng * 2685821657736338717ull;
}

/* ---- the window ----------------------------------------------------------------------- */

static void end(bench_t *b)
{
    bench_window_end(b);
    bench_finish(b);
}

static uint64_t inflight(const c2c_t *s)
{
    return s->sent - s->ack_ok - s->ack_err - s->lost;
}

static void check_drained(bench_t *b)
{
    c2c_t *s = b->sc_data;

    if (s->draining && !b->finishing && inflight(s) == 0 && s->pushes_timed >= s->ack_ok)
        end(b);
}

/* No new sends from now on. */
static void window_over(bench_t *b)
{
    c2c_t *s = b->sc_data;

    if (!s->running)
        return;
    s->running = false;
    bench_sched_stop(&s->sched);
    s->t_over_ns = bench_now_ns();
    s->sent_window = s->sent;
    s->ack_ok_window = s->ack_ok;
    s->draining = true;
    bench_phase(b, "drain", BENCH_DRAIN_S, end);
    check_drained(b);
}

static void on_ack(cimc_t *c, void *ctx, int status, uint32_t type, const uint8_t *body,
                   size_t len);

/* One SEND from @p bc, its latency counted from @p t_ns. */
static int send_one(bench_t *b, bconn_t *bc, uint64_t t_ns)
{
    c2c_t *s = b->sc_data;
    cim_SendReq req = cim_SendReq_init_zero;
    cimc_bytes_t body = {s->body, b->o.size};
    bconn_t *to;
    unsigned r;
    int rc;

    r = (unsigned)(rnd(s) % s->nopen);
    to = &b->conns[s->open[r]];
    if (to == bc)
        to = &b->conns[s->open[(r + 1) % s->nopen]];
    bench_stamp(b, bc, s->body, t_ns, req.client_msg_id, sizeof(req.client_msg_id));
    req.conv_type = cim_ConvType_DIRECT;
    bench_user(req.to, sizeof(req.to), to->idx % b->o.users);
    req.msg_type = cim_MsgType_TEXT;
    cimc_bytes_encoder(&req.body, &body);
    rc =
        cimc_async_request(bc->c, FT_SEND, cim_SendReq_fields, &req, FT_SEND_ACK, on_ack, bc, NULL);
    if (rc < 0) {
        s->send_failed++;
        bench_count_rc(b, rc);
        return rc;
    }
    bench_ring_push(bc, t_ns);
    bc->seq++;
    s->sent++;
    return 0;
}

/* Closed loop: may @p bc send another? */
static bool may_send(const bench_t *b, const c2c_t *s, const bconn_t *bc)
{
    return s->running && !b->stopping && bc->open && bc->c != NULL &&
           (b->o.count == 0 || s->sent < b->o.count);
}

static void on_ack(cimc_t *c, void *ctx, int status, uint32_t type, const uint8_t *body, size_t len)
{
    bconn_t *bc = ctx;
    bench_t *b = bc->b;
    c2c_t *s = b->sc_data;
    cim_SendRsp rsp = cim_SendRsp_init_zero;
    uint64_t t0 = 0, now = bench_now_ns();
    bool have_t0 = bench_ring_pop(bc, &t0);

    (void)c;
    (void)type;
    if (b->finishing)
        return;
    if (status < 0) {
        s->lost++;
    } else if (cimc_decode(cim_SendRsp_fields, body, len, &rsp) < 0) {
        s->ack_err++;
        bench_count_rc(b, RC_EPROTO);
    } else if (rsp.code != cim_Code_OK) {
        s->ack_err++;
        bench_count_code(b, (int)rsp.code);
    } else {
        s->ack_ok++;
        s->t_last_ack_ns = now;
        if (have_t0 && now >= t0) {
            hist_record(&s->ack, now - t0);
            hist_record(&s->ack_iv, now - t0);
        }
    }
    if (!s->open_loop && status == 0) {
        if (may_send(b, s, bc))
            (void)send_one(b, bc, bench_now_ns()); /* a failure is counted there */
        else if (s->running && b->o.count != 0 && s->sent >= b->o.count && inflight(s) == 0)
            window_over(b);
    }
    check_drained(b);
}

static void on_push(bench_t *b, bconn_t *bc, const cimc_push_t *p)
{
    c2c_t *s = b->sc_data;
    uint64_t now, lat;

    if (p->type == FT_EVENT) {
        s->events++;
        return;
    }
    if (p->type != FT_PUSH)
        return;
    s->pushes++;
    if (bench_push_timed(b, p, &now, &lat)) {
        s->pushes_timed++;
        hist_record(&s->push, lat);
        hist_record(&s->push_iv, lat);
    } else {
        s->stray++;
    }
    if (p->u.msg.msg_id > bc->push_max)
        bc->push_max = p->u.msg.msg_id;
    bench_push_ack(b, bc, &s->push_acks);
    check_drained(b);
}

static void setup_done(bench_t *b)
{
    c2c_t *s = b->sc_data;
    uint64_t now;

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
    bench_window_start(b);
    s->running = true;
    bench_phase(b, "run", b->o.duration_s, window_over);
    if (s->open_loop) {
        bench_sched_start(&s->sched, &s->running, s->open, s->nopen, send_one, window_over);
        return;
    }
    now = bench_now_ns();
    for (unsigned w = 0; w < b->o.window; w++)
        for (unsigned i = 0; i < s->nopen; i++) {
            bconn_t *bc = &b->conns[s->open[i]];
            if (may_send(b, s, bc))
                (void)send_one(b, bc, now); /* a failure is counted there */
        }
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

static void finish(bench_t *b)
{
    c2c_t *s = b->sc_data;

    bench_sched_close(&s->sched);
}

static int start(bench_t *b)
{
    c2c_t *s = mem_calloc(sizeof(*s));
    int rc;

    b->sc_data = s;
    if (b->o.users == 0)
        b->o.users = 100;
    if (b->o.users < 2) {
        fprintf(stderr, "cimbench: c2c needs --users >= 2\n");
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
    s->rng = ((uint64_t)b->run_id << 32) | 0x9e3779b9u;
    s->body = mem_alloc(b->o.size);
    memset(s->body, 'x', b->o.size);
    if ((rc = bench_sched_init(b, &s->sched, s->open_loop)) < 0)
        return rc;
    b->op_name = "message";
    b->tput_unit = "msgs/s";
    bench_pool_open(b, b->o.users); /* user i on connection i */
    return 0;
}

static void progress(bench_t *b, char *buf, size_t len, double dt)
{
    c2c_t *s = b->sc_data;
    char r1[32], r2[32], r3[32];

    if (!s->running && !s->draining) {
        snprintf(buf, len, "open %u/%u  connecting %u  failed %u", b->open_now, b->nconns,
                 b->connecting, b->open_failed);
        return;
    }
    snprintf(buf, len,
             "sent %s/s  ok %s/s  push %s/s  inflight %llu  err %llu  "
             "ack p50 %.2f p99 %.2f  push p50 %.2f p99 %.2f ms",
             bench_si(r1, sizeof(r1), (double)(s->sent - s->sent_last) / dt),
             bench_si(r2, sizeof(r2), (double)(s->ack_ok - s->ack_ok_last) / dt),
             bench_si(r3, sizeof(r3), (double)(s->pushes - s->pushes_last) / dt),
             (unsigned long long)inflight(s), (unsigned long long)bench_errors(b),
             (double)hist_percentile(&s->ack_iv, 50) / 1e6,
             (double)hist_percentile(&s->ack_iv, 99) / 1e6,
             (double)hist_percentile(&s->push_iv, 50) / 1e6,
             (double)hist_percentile(&s->push_iv, 99) / 1e6);
    s->sent_last = s->sent;
    s->ack_ok_last = s->ack_ok;
    s->pushes_last = s->pushes;
    hist_reset(&s->ack_iv);
    hist_reset(&s->push_iv);
}

static void report(bench_t *b, report_t *r)
{
    c2c_t *s = b->sc_data;
    double span = s->t_last_ack_ns > b->w_t0_ns && b->w_t0_ns != 0
                      ? (double)(s->t_last_ack_ns - b->w_t0_ns) / 1e9
                      : 0.0;
    double win = s->t_over_ns > b->w_t0_ns && b->w_t0_ns != 0
                     ? (double)(s->t_over_ns - b->w_t0_ns) / 1e9
                     : 0.0;

    b->ops = s->ack_ok;
    b->tput = span > 0 ? (double)s->ack_ok / span : 0.0;
    report_str(r, "c2c", "mode", s->open_loop ? "open" : "closed");
    report_int(r, "c2c", "users_open", s->nopen);
    if (s->open_loop)
        report_num(r, "c2c", "offered_rate", b->o.rate);
    report_int(r, "c2c", "sent", (int64_t)s->sent);
    report_int(r, "c2c", "acked_ok", (int64_t)s->ack_ok);
    report_int(r, "c2c", "acked_error", (int64_t)s->ack_err);
    report_int(r, "c2c", "lost", (int64_t)s->lost);
    /* still in flight when the drain ended (the server was that far behind) */
    report_int(r, "c2c", "unanswered", (int64_t)inflight(s));
    report_int(r, "c2c", "send_failed", (int64_t)s->send_failed);
    if (s->open_loop) {
        report_int(r, "c2c", "skipped", (int64_t)s->sched.skipped);
        /* due by the clock but never sent: the bench itself fell behind (see sched_lag) */
        report_int(r, "c2c", "behind_schedule", bench_sched_behind(b, &s->sched, win));
    }
    report_int(r, "c2c", "pushes", (int64_t)s->pushes);
    report_int(r, "c2c", "pushes_timed", (int64_t)s->pushes_timed);
    report_int(r, "c2c", "pushes_stray", (int64_t)s->stray);
    report_int(r, "c2c", "events", (int64_t)s->events);
    report_int(r, "c2c", "push_acks_sent", (int64_t)s->push_acks);
    report_int(r, "c2c", "sent_in_window", (int64_t)s->sent_window);
    report_int(r, "c2c", "acked_ok_in_window", (int64_t)s->ack_ok_window);
    report_num(r, "c2c", "window_s", win);
    if (win > 0)
        report_num(r, "c2c", "acked_ok_per_s_in_window", (double)s->ack_ok_window / win);
    report_num(r, "c2c", "first_send_to_last_ack_s", span);
    report_hist(r, "latency_us", "send_ack", &s->ack);
    report_hist(r, "latency_us", "send_push", &s->push);
    if (s->open_loop)
        report_hist(r, "latency_us", "sched_lag", &s->sched.lag);
    mem_free(s->open);
    s->open = NULL;
    mem_free(s->body);
    s->body = NULL;
}

const scenario_t sc_c2c = {
    .name = "c2c",
    .summary = "direct messages, closed (--window) or open loop (--rate): ack/push latency",
    .start = start,
    .progress = progress,
    .stop = stop,
    .setup_done = setup_done,
    .on_push = on_push,
    .report = report,
    .finish = finish,
};
