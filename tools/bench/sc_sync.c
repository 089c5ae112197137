/* sc_sync: offline catch-up. Pre-load user "syncer"'s timeline with --messages N, then
 * time fresh devices of "syncer" fetching all of it with SYNC.
 *
 * Connections (not the pool: they open in stages): 0 is the sender ("syncsender", device
 * "sync-sender"); 1 logs "syncer" in once (device "sync-init") so that the user exists,
 * and closes at once; 2..K+1 are the fresh devices ("sync-<run id>-<k>": a device_id never
 * seen, so its cursor is 0), opened only once the pre-load is acknowledged.
 *
 * Pre-load: the sender sends N TEXT messages of --size bytes to "syncer", PRELOAD_WINDOW
 * in flight; body bytes 0..7 are the send time, 8..11 the run id, 12..15 the message's
 * sequence number. cimd must allow the rate (--send_rate/--send_burst), else the
 * RATE_LIMITED ones are counted as errors and missing from the timeline.
 *
 * Sync (the measured window): once the --devices K fresh devices are logged in, each asks
 * SYNC{after_msg_id 0 (its cursor: 0), limit L} and then SYNC{after_msg_id = last_msg_id}
 * while remain > 0, one page in flight per device (the next request needs the previous
 * answer). The window runs from the first SYNC request to the last page of the last
 * device; throughput is messages synced (all devices) per second of it. Each page's
 * latency (request → answer) goes to a histogram.
 *
 * Verification, per device: msg_ids strictly ascending across pages (else out_of_order);
 * every message of this run acknowledged OK seen exactly once (else missing / duplicate,
 * from a bitmap by sequence number); the last page reaches the timeline's head as
 * LoginRsp.latest_msg_id gave it (else short). Each of these counts as a mismatch error.
 * Messages of earlier runs on the same data dir are synced too (the whole timeline) and
 * reported as msgs_earlier: for a clean count use a fresh data dir.
 *
 * --duration caps the sync phase (a device not done by then is reported short).
 *
 * One loop thread only (--threads 1): every connection is on loop thread 0, the main
 * thread's loop, so the whole scenario runs on one thread as it always did. */
#include <pb_decode.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "core/frame.h"
#include "core/mem.h"
#include "core/rc.h"

#define PRELOAD_WINDOW 64
#define LOGIN_MAX_S    20.0 /* each of the two login stages */
#define SYNC_USER      "syncer"
#define SENDER_USER    "syncsender"
#define BITMAP_MAX     (512u << 20) /* bytes of "seen" bitmaps in all */

enum { C_SENDER = 0, C_INIT = 1, C_DEV0 = 2 };

typedef struct sdev {
    bool ready, done, failed;
    uint64_t latest; /* LoginRsp.latest_msg_id: the timeline's head */
    uint64_t t_req_ns;
    uint64_t last_id; /* highest msg_id seen */
    uint64_t synced, run_msgs, earlier, dups, order_err, pages, bytes;
    uint8_t *seen; /* bit per sequence number */
} sdev_t;

typedef struct syn {
    uint64_t N;
    unsigned K;
    sdev_t *dev;
    uint8_t *acked; /* bit per sequence number acknowledged OK */
    uint8_t *body;

    bool sender_ready, init_closed, preloading, opening, syncing;
    uint64_t issued, answered, pl_ok, pl_err, pl_lost;
    uint64_t pl_t0_ns, pl_t1_ns;
    unsigned devs_ready, devs_failed, devs_done;
    uint64_t sync_t0_ns, sync_t1_ns;
    uint64_t synced, pages, bytes; /* all devices */
    uint64_t stray_pushes;
    uint64_t answered_last, synced_last, pages_last; /* progress */
    hist_t pl_ack, page, page_iv;
} syn_t;

static bool bit_get(const uint8_t *m, uint64_t i)
{
    return (m[i >> 3] >> (i & 7)) & 1;
}

static void bit_set(uint8_t *m, uint64_t i)
{
    m[i >> 3] = (uint8_t)(m[i >> 3] | (1u << (i & 7)));
}

static void login_hook(const bench_t *b, const bconn_t *bc, cim_LoginReq *req)
{
    if (bc->idx == C_SENDER) {
        snprintf(req->user, sizeof(req->user), "%s", SENDER_USER);
        snprintf(req->device_id, sizeof(req->device_id), "sync-sender");
        return;
    }
    snprintf(req->user, sizeof(req->user), "%s", SYNC_USER);
    if (bc->idx == C_INIT)
        snprintf(req->device_id, sizeof(req->device_id), "sync-init");
    else
        snprintf(req->device_id, sizeof(req->device_id), "sync-%08x-%u", (unsigned)b->run_id,
                 bc->idx - C_DEV0);
}

/* The sender is user 0, syncer (every other connection) user 1: their servers. */
static unsigned user_no(const bench_t *b, const bconn_t *bc)
{
    (void)b;
    return bc->idx == C_SENDER ? 0 : 1;
}

static void end(bench_t *b)
{
    bench_window_end(b);
    bench_finish(b);
}

static void fail_now(bench_t *b)
{
    b->failed = true;
    end(b);
}

/* ---- sync ----------------------------------------------------------------------------- */

typedef struct peek {
    uint8_t head[16];
    size_t have;
} peek_t;

/* Message.body: keep the first 16 bytes (time, run id, sequence), skip the rest. */
static bool on_body(pb_istream_t *st, const pb_field_t *f, void **arg)
{
    peek_t *pk = *arg;
    size_t n = st->bytes_left < sizeof(pk->head) ? st->bytes_left : sizeof(pk->head);

    (void)f;
    if (!pb_read(st, pk->head, n))
        return false;
    pk->have = n;
    return pb_read(st, NULL, st->bytes_left);
}

typedef struct page_ctx {
    bench_t *b;
    sdev_t *d;
    uint64_t n;
} page_ctx_t;

/* One Message of a SyncRsp page. */
static bool on_message(pb_istream_t *st, const pb_field_t *f, void **arg)
{
    page_ctx_t *pc = *arg;
    syn_t *s = pc->b->sc_data;
    sdev_t *d = pc->d;
    cim_Message m;
    peek_t pk;
    uint32_t run, seq;

    (void)f;
    memset(&m, 0, sizeof(m));
    pk.have = 0;
    m.body.funcs.decode = on_body;
    m.body.arg = &pk;
    if (!pb_decode(st, cim_Message_fields, &m))
        return false;
    pc->n++;
    d->synced++;
    if (m.msg_id <= d->last_id)
        d->order_err++;
    else
        d->last_id = m.msg_id;
    if (pk.have >= 16) {
        memcpy(&run, pk.head + 8, sizeof(run));
        memcpy(&seq, pk.head + 12, sizeof(seq));
    } else {
        run = ~pc->b->run_id;
        seq = 0;
    }
    if (run == pc->b->run_id && seq < s->N && strcmp(m.from, SENDER_USER) == 0) {
        if (bit_get(d->seen, seq)) {
            d->dups++;
        } else {
            bit_set(d->seen, seq);
            d->run_msgs++;
        }
    } else {
        d->earlier++;
    }
    return true;
}

static void all_done(bench_t *b)
{
    syn_t *s = b->sc_data;

    if (!s->syncing)
        return;
    s->syncing = false;
    if (s->sync_t1_ns == 0)
        s->sync_t1_ns = bench_now_ns();
    end(b);
}

static void dev_done(bench_t *b, sdev_t *d, bool failed)
{
    syn_t *s = b->sc_data;

    if (d->done)
        return;
    d->done = true;
    d->failed = failed;
    if (++s->devs_done == s->devs_ready)
        all_done(b);
}

static void on_page(cimc_t *c, void *ctx, int status, uint32_t type, const uint8_t *body,
                    size_t len);

static void send_sync(bench_t *b, bconn_t *bc, uint64_t after)
{
    syn_t *s = b->sc_data;
    sdev_t *d = &s->dev[bc->idx - C_DEV0];
    cim_SyncReq req = cim_SyncReq_init_zero;
    int rc;

    req.after_msg_id = after;
    req.limit = b->o.limit;
    d->t_req_ns = bench_now_ns();
    rc = cimc_async_request(bc->c, FT_SYNC, cim_SyncReq_fields, &req, FT_SYNC_ACK, on_page, bc,
                            NULL);
    if (rc < 0) {
        bench_count_rc(b, rc);
        dev_done(b, d, true);
    }
}

static void on_page(cimc_t *c, void *ctx, int status, uint32_t type, const uint8_t *body,
                    size_t len)
{
    bconn_t *bc = ctx;
    bench_t *b = bc->b;
    syn_t *s = b->sc_data;
    sdev_t *d = &s->dev[bc->idx - C_DEV0];
    cim_SyncRsp rsp;
    page_ctx_t pc = {b, d, 0};
    uint64_t now = bench_now_ns(), before = d->synced;

    (void)c;
    (void)type;
    if (b->finishing || !s->syncing)
        return;
    if (status < 0) {
        bench_count_rc(b, status);
        dev_done(b, d, true);
        return;
    }
    hist_record(&s->page, now - d->t_req_ns);
    hist_record(&s->page_iv, now - d->t_req_ns);
    memset(&rsp, 0, sizeof(rsp));
    rsp.messages.funcs.decode = on_message;
    rsp.messages.arg = &pc;
    if (cimc_decode(cim_SyncRsp_fields, body, len, &rsp) < 0) {
        bench_count_rc(b, RC_EPROTO);
        dev_done(b, d, true);
        return;
    }
    d->pages++;
    d->bytes += len;
    s->pages++;
    s->bytes += len;
    s->synced += d->synced - before;
    s->sync_t1_ns = now;
    if (rsp.code != cim_Code_OK) {
        bench_count_code(b, (int)rsp.code);
        dev_done(b, d, true);
    } else if (rsp.remain > 0 && pc.n == 0) {
        fprintf(stderr, "cimbench: sync: an empty page with remain %u\n", (unsigned)rsp.remain);
        b->mismatch++;
        dev_done(b, d, true);
    } else if (rsp.remain > 0 && !b->stopping) {
        send_sync(b, bc, rsp.last_msg_id);
    } else {
        dev_done(b, d, rsp.remain > 0);
    }
}

static void sync_begin(bench_t *b)
{
    syn_t *s = b->sc_data;

    s->opening = false;
    if (s->devs_ready == 0) {
        fprintf(stderr, "cimbench: sync: no fresh device could log in\n");
        fail_now(b);
        return;
    }
    s->syncing = true;
    bench_window_start(b);
    s->sync_t0_ns = b->w_t0_ns;
    bench_phase(b, "sync", b->o.duration_s, b->sc->stop);
    for (unsigned k = 0; k < s->K && s->syncing; k++)
        if (s->dev[k].ready)
            send_sync(b, &b->conns[C_DEV0 + k], 0);
}

/* ---- connections ---------------------------------------------------------------------- */

static void preload_fill(bench_t *b);

static void on_ready(cimc_t *c, void *ctx, int status, const cim_LoginRsp *rsp)
{
    bconn_t *bc = ctx;
    bench_t *b = bc->b;
    syn_t *s = b->sc_data;
    bool ok = status == 0 && rsp != NULL && rsp->code == cim_Code_OK;

    if (b->finishing)
        return;
    if (ok) {
        bc->open = true;
        bench_login_record(bc->t, bench_now_ns() - bc->t0_ns);
    } else if (status < 0) {
        bench_count_rc(b, status);
    } else {
        bench_count_code(b, rsp != NULL ? (int)rsp->code : cim_Code_INTERNAL);
    }
    if (bc->idx < C_DEV0 && !ok) {
        fprintf(stderr, "cimbench: sync: %s could not log in\n",
                bc->idx == C_SENDER ? SENDER_USER : SYNC_USER);
        fail_now(b);
        return;
    }
    if (bc->idx == C_SENDER) {
        s->sender_ready = true;
        preload_fill(b);
    } else if (bc->idx == C_INIT) {
        bc->open = false;
        cimc_async_close(c); /* the user exists now; on_close goes on */
    } else {
        sdev_t *d = &s->dev[bc->idx - C_DEV0];
        if (ok) {
            d->ready = true;
            d->latest = rsp->latest_msg_id;
            s->devs_ready++;
        } else {
            s->devs_failed++;
        }
        if (s->devs_ready + s->devs_failed == s->K)
            sync_begin(b);
    }
}

static void on_push(cimc_t *c, void *ctx, const cimc_push_t *p)
{
    bconn_t *bc = ctx;
    syn_t *s = bc->b->sc_data;

    (void)c;
    (void)p;
    s->stray_pushes++; /* nobody sends to "syncer" while it syncs (unless another client) */
}

static void on_close(cimc_t *c, void *ctx, int status, const cim_Bye *bye)
{
    bconn_t *bc = ctx;
    bench_t *b = bc->b;
    syn_t *s = b->sc_data;
    bool was_open = bc->open;

    (void)c;
    bc->c = NULL;
    bc->open = false;
    if (b->finishing)
        return;
    if (bc->idx == C_INIT && !s->init_closed) {
        s->init_closed = true;
        preload_fill(b);
        return;
    }
    if (!was_open)
        return; /* a failed login (counted) or our own close */
    bench_ctr_add(&bc->t->disconnects, 1);
    if (bye != NULL)
        bench_count_code(b, (int)bye->code);
    else if (status < 0)
        bench_count_rc(b, status);
    if (bc->idx == C_SENDER && s->preloading) {
        fprintf(stderr, "cimbench: sync: the sender's connection ended during the pre-load\n");
        fail_now(b);
    } else if (bc->idx >= C_DEV0 && s->syncing) {
        dev_done(b, &s->dev[bc->idx - C_DEV0], true);
    }
}

static const cimc_async_cbs_t cbs = {on_ready, on_push, on_close};

static void open_devices(bench_t *b)
{
    syn_t *s = b->sc_data;

    s->opening = true;
    bench_phase(b, "login", LOGIN_MAX_S, b->sc->stop);
    for (unsigned k = 0; k < s->K && !b->finishing; k++) {
        bconn_t *bc = &b->conns[C_DEV0 + k];
        bc->idx = C_DEV0 + k;
        if (bench_connect(&b->thr[0], bc, &cbs) < 0 && ++s->devs_failed + s->devs_ready == s->K)
            sync_begin(b); /* the failure is counted by bench_connect */
    }
}

/* ---- pre-load ------------------------------------------------------------------------- */

static void on_preload_ack(cimc_t *c, void *ctx, int status, uint32_t type, const uint8_t *body,
                           size_t len);

static void preload_done(bench_t *b)
{
    syn_t *s = b->sc_data;
    bconn_t *sender = &b->conns[C_SENDER];

    s->preloading = false;
    s->pl_t1_ns = bench_now_ns();
    if (sender->c != NULL) {
        sender->open = false;
        cimc_async_close(sender->c);
    }
    if (b->stopping) { /* interrupted during the pre-load */
        fail_now(b);
        return;
    }
    if (s->pl_ok == 0) {
        fprintf(stderr, "cimbench: sync: no pre-load message was accepted\n");
        fail_now(b);
        return;
    }
    open_devices(b);
}

/* Keep PRELOAD_WINDOW SENDs in flight until N were sent. The first call (both the sender
 * logged in and "syncer" exists) starts the pre-load. */
static void preload_fill(bench_t *b)
{
    syn_t *s = b->sc_data;
    bconn_t *bc = &b->conns[C_SENDER];

    if (!s->preloading) {
        if (!s->sender_ready || !s->init_closed || s->pl_t0_ns != 0)
            return;
        s->preloading = true;
        s->pl_t0_ns = bench_now_ns();
        bench_phase(b, "preload", BENCH_SETUP_MAX_S - 2 * LOGIN_MAX_S, b->sc->stop);
    }
    while (!b->stopping && s->issued < s->N && s->issued - s->answered < PRELOAD_WINDOW) {
        cim_SendReq req = cim_SendReq_init_zero;
        cimc_bytes_t body = {s->body, b->o.size};
        uint64_t now = bench_now_ns();
        uint32_t seq = (uint32_t)s->issued;
        int rc;

        memcpy(s->body, &now, sizeof(now));
        memcpy(s->body + 8, &b->run_id, sizeof(b->run_id));
        memcpy(s->body + 12, &seq, sizeof(seq));
        snprintf(req.client_msg_id, sizeof(req.client_msg_id), "%08x-s-%u", (unsigned)b->run_id,
                 seq);
        req.conv_type = cim_ConvType_DIRECT;
        snprintf(req.to, sizeof(req.to), "%s", SYNC_USER);
        req.msg_type = cim_MsgType_TEXT;
        cimc_bytes_encoder(&req.body, &body);
        rc = cimc_async_request(bc->c, FT_SEND, cim_SendReq_fields, &req, FT_SEND_ACK,
                                on_preload_ack, bc, NULL);
        if (rc < 0) {
            bench_count_rc(b, rc);
            fprintf(stderr, "cimbench: sync: cannot send the pre-load: %s\n", rc_str(rc));
            fail_now(b);
            return;
        }
        bench_ring_push(bc, now);
        s->issued++;
    }
}

static void on_preload_ack(cimc_t *c, void *ctx, int status, uint32_t type, const uint8_t *body,
                           size_t len)
{
    bconn_t *bc = ctx;
    bench_t *b = bc->b;
    syn_t *s = b->sc_data;
    cim_SendRsp rsp = cim_SendRsp_init_zero;
    uint64_t t0 = 0, now = bench_now_ns();
    uint64_t seq = s->answered; /* answers come in request order */
    bool have_t0 = bench_ring_pop(bc, &t0);

    (void)c;
    (void)type;
    if (b->finishing || !s->preloading)
        return;
    s->answered++;
    if (status < 0) {
        s->pl_lost++; /* on_close ends the run */
    } else if (cimc_decode(cim_SendRsp_fields, body, len, &rsp) < 0) {
        s->pl_err++;
        bench_count_rc(b, RC_EPROTO);
    } else if (rsp.code != cim_Code_OK) {
        s->pl_err++;
        bench_count_code(b, (int)rsp.code);
    } else {
        s->pl_ok++;
        bit_set(s->acked, seq);
        if (have_t0 && now >= t0)
            hist_record(&s->pl_ack, now - t0);
    }
    if (status < 0)
        return;
    if (s->answered == s->N || (b->stopping && s->answered == s->issued))
        preload_done(b);
    else
        preload_fill(b);
}

/* ---- scenario ------------------------------------------------------------------------- */

static void stop(bench_t *b)
{
    syn_t *s = b->sc_data;

    b->stopping = true;
    if (s->syncing) {
        fprintf(stderr, "cimbench: sync: stopped before every device synced everything "
                        "(--duration caps the sync)\n");
        b->failed = true;
        all_done(b);
        return;
    }
    if (s->preloading && s->answered < s->issued) {
        bench_phase(b, "drain", BENCH_DRAIN_S, end);
        return;
    }
    if (s->preloading || s->opening)
        b->failed = true;
    end(b);
}

static int start(bench_t *b)
{
    syn_t *s = mem_calloc(sizeof(*s));
    size_t bm;

    b->sc_data = s;
    s->N = b->o.messages;
    if (s->N > 10000000u) {
        fprintf(stderr, "cimbench: sync: --messages wants 1..10000000\n");
        return -1;
    }
    s->K = b->o.devices;
    bm = (size_t)((s->N + 7) / 8);
    if ((uint64_t)bm * (s->K + 1) > BITMAP_MAX) {
        fprintf(stderr, "cimbench: sync: --messages %llu x --devices %u is too much to verify\n",
                (unsigned long long)s->N, s->K);
        return -1;
    }
    if ((long)s->K + C_DEV0 + BENCH_FD_RESERVE > b->nofile) {
        fprintf(stderr, "cimbench: sync: --devices %u needs more descriptors than %ld\n", s->K,
                b->nofile);
        return -1;
    }
    hist_reset(&s->pl_ack);
    hist_reset(&s->page);
    hist_reset(&s->page_iv);
    s->dev = mem_calloc((size_t)s->K * sizeof(*s->dev));
    for (unsigned k = 0; k < s->K; k++)
        s->dev[k].seen = mem_calloc(bm + 1);
    s->acked = mem_calloc(bm + 1);
    s->body = mem_alloc(b->o.size);
    memset(s->body, 'x', b->o.size);
    b->conns = mem_calloc((size_t)(s->K + C_DEV0) * sizeof(*b->conns));
    b->nconns = s->K + C_DEV0;
    b->o.users = 2;
    b->op_name = "message";
    b->tput_unit = "msgs/s";
    bench_phase(b, "login", LOGIN_MAX_S, stop);
    for (unsigned i = C_SENDER; i <= C_INIT; i++) {
        b->conns[i].idx = i;
        if (bench_connect(&b->thr[0], &b->conns[i], &cbs) < 0) {
            fprintf(stderr, "cimbench: sync: cannot connect\n");
            return -1;
        }
    }
    return 0;
}

static void progress(bench_t *b, char *buf, size_t len, double dt)
{
    syn_t *s = b->sc_data;
    char r1[32], r2[32];

    if (s->syncing || s->sync_t0_ns != 0) {
        snprintf(buf, len,
                 "synced %llu (%s/s)  pages %s/s  devices done %u/%u  err %llu  "
                 "page p50 %.2f p99 %.2f ms",
                 (unsigned long long)s->synced,
                 bench_si(r1, sizeof(r1), (double)(s->synced - s->synced_last) / dt),
                 bench_si(r2, sizeof(r2), (double)(s->pages - s->pages_last) / dt), s->devs_done,
                 s->devs_ready, (unsigned long long)bench_errors(b),
                 (double)hist_percentile(&s->page_iv, 50) / 1e6,
                 (double)hist_percentile(&s->page_iv, 99) / 1e6);
        s->synced_last = s->synced;
        s->pages_last = s->pages;
        hist_reset(&s->page_iv);
    } else if (s->preloading) {
        snprintf(buf, len, "pre-load %llu/%llu answered (%s/s)  errors %llu",
                 (unsigned long long)s->answered, (unsigned long long)s->N,
                 bench_si(r1, sizeof(r1), (double)(s->answered - s->answered_last) / dt),
                 (unsigned long long)bench_errors(b));
        s->answered_last = s->answered;
    } else if (s->opening) {
        snprintf(buf, len, "fresh devices logged in %u/%u  failed %u", s->devs_ready, s->K,
                 s->devs_failed);
    } else {
        snprintf(buf, len, "logging in");
    }
}

static double secs(uint64_t t0, uint64_t t1)
{
    return t0 != 0 && t1 > t0 ? (double)(t1 - t0) / 1e9 : 0.0;
}

static void report(bench_t *b, report_t *r)
{
    syn_t *s = b->sc_data;
    double pl = secs(s->pl_t0_ns, s->pl_t1_ns), sy = secs(s->sync_t0_ns, s->sync_t1_ns);
    uint64_t missing = 0, dups = 0, order = 0, shorts = 0, run_msgs = 0, earlier = 0;
    unsigned ok_devs = 0;

    for (unsigned k = 0; k < s->K && s->dev != NULL; k++) {
        sdev_t *d = &s->dev[k];
        if (!d->ready)
            continue;
        for (uint64_t i = 0; i < s->N; i++)
            if (bit_get(s->acked, i) && !bit_get(d->seen, i))
                missing++;
        dups += d->dups;
        order += d->order_err;
        run_msgs += d->run_msgs;
        earlier += d->earlier;
        if (!d->done || d->failed || d->last_id < d->latest)
            shorts++;
        else
            ok_devs++;
    }
    if (s->sync_t0_ns != 0)
        b->mismatch += missing + dups + order + shorts;
    b->unanswered += s->issued - s->answered; /* the pre-load was interrupted */
    b->ops = s->synced;
    b->tput = sy > 0 ? (double)s->synced / sy : 0.0;
    report_int(r, "sync", "messages", (int64_t)s->N);
    report_int(r, "sync", "preload_sent", (int64_t)s->issued);
    report_int(r, "sync", "preload_acked_ok", (int64_t)s->pl_ok);
    report_int(r, "sync", "preload_errors", (int64_t)(s->pl_err + s->pl_lost));
    report_num(r, "sync", "preload_s", pl);
    report_num(r, "sync", "preload_msgs_per_s", pl > 0 ? (double)s->pl_ok / pl : 0.0);
    report_int(r, "sync", "devices", s->K);
    report_int(r, "sync", "devices_logged_in", s->devs_ready);
    report_int(r, "sync", "devices_complete", ok_devs);
    report_int(r, "sync", "limit", b->o.limit);
    report_int(r, "sync", "pages", (int64_t)s->pages);
    report_num(r, "sync", "msgs_per_page",
               s->pages != 0 ? (double)s->synced / (double)s->pages : 0.0);
    report_int(r, "sync", "bytes", (int64_t)s->bytes);
    report_num(r, "sync", "sync_s", sy);
    report_int(r, "sync", "msgs_synced", (int64_t)s->synced);
    report_num(r, "sync", "msgs_per_s", b->tput);
    report_num(r, "sync", "bytes_per_s", sy > 0 ? (double)s->bytes / sy : 0.0);
    /* all devices together: each should have every message of this run acked OK */
    report_int(r, "sync", "msgs_of_this_run", (int64_t)run_msgs);
    report_int(r, "sync", "msgs_expected", (int64_t)(s->pl_ok * s->devs_ready));
    report_int(r, "sync", "msgs_earlier", (int64_t)earlier);
    report_int(r, "sync", "missing", (int64_t)missing);
    report_int(r, "sync", "duplicates", (int64_t)dups);
    report_int(r, "sync", "out_of_order", (int64_t)order);
    report_int(r, "sync", "devices_short", (int64_t)shorts);
    report_int(r, "sync", "pushes_stray", (int64_t)s->stray_pushes);
    report_hist(r, "latency_us", "sync_page", &s->page);
    report_hist(r, "latency_us", "preload_ack", &s->pl_ack);
    for (unsigned k = 0; k < s->K && s->dev != NULL; k++)
        mem_free(s->dev[k].seen);
    mem_free(s->dev);
    mem_free(s->acked);
    mem_free(s->body);
    s->dev = NULL;
    s->acked = NULL;
    s->body = NULL;
}

const scenario_t sc_sync = {
    .name = "sync",
    .summary = "pre-load N messages to a user, time fresh devices SYNCing them: msgs/s",
    .start = start,
    .progress = progress,
    .stop = stop,
    .report = report,
    .login = login_hook,
    .user_no = user_no,
};
