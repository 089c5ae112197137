/* sc_group: group fan-out. --groups G groups of --members M users each, every user online
 * on one connection (user "g<i>m<j>", device "group-<idx>", connection idx = i*M + j,
 * spread over the source addresses like every pool).
 *
 * Setup (before the measured window): log in all G*M users (a user exists once it logged
 * in, and GROUP_CREATE wants existing members), then member 0 of every group creates it
 * with up to 1000 others as members (GroupCreateReq's bound) and adds the rest with
 * GROUP_ADD, 1000 per request, pipelined on its connection. Every creation and addition
 * is a SYSTEM message pushed to each online member; the window starts once all of those
 * arrived (or after SETTLE_MAX_S, with a warning), so they do not mix with the load.
 *
 * Load: members 0..S-1 of every group (--senders S) send TEXT messages of --size bytes to
 * their group, closed loop (--window W in flight per sender, default 1) or open loop
 * (--rate R messages/s in all, round-robin over the senders, latency from the scheduled
 * time: see sc_c2c.c, whose timerfd scheduler this repeats). The first 8 body bytes are
 * the send time, the next 4 the run id, as in c2c.
 *
 * Deliveries: every member counts the PUSHes of this run's messages (SYSTEM pushes and
 * other runs' messages apart). A message acknowledged OK is expected at every member of
 * its group that was online when the window started, except its sender (cimd pushes to
 * the sender's *other* devices only, and a sender has one): expected = sum over acked
 * messages of (online members - 1). A device's pushes come in ascending msg_id order
 * without gaps (PROTOCOL.md §6), so a push whose msg_id is not above the last one on its
 * connection is a duplicate. After the window the answers and pushes still due are awaited
 * for at most BENCH_DRAIN_S; what is still missing then, and every duplicate, counts as a
 * mismatch error, and every SEND still unanswered as an "unanswered" error (its pushes, if
 * any came, are reported as unconfirmed deliveries: counted, but neither expected nor
 * wrong, so they can mask missing ones; the run is then overloaded anyway).
 *
 * Throughput (the headline) is deliveries/s: deliveries received over the time from the
 * window's start to the last delivery; the series counts deliveries per --window-s window
 * (with the ack and push latencies). CPU per op is per delivery; the report adds the
 * server's and the bench's CPU per message.
 *
 * Threads (--threads N): member connection i lives on loop thread i % N. Creating group g
 * is done by the thread of its member 0 (the per-group state is that thread's), the sends
 * by each sender's thread, the deliveries counted by each receiver's; the main thread sums
 * the per-thread counters (grp_thr_t) to decide when the creation settled, when the
 * window is over and when the drain is done (check). */
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "core/frame.h"
#include "core/mem.h"
#include "core/rc.h"

#define CREATE_MAX_S 120.0 /* creating the groups: at most this long */
#define SETTLE_MAX_S 30.0  /* waiting for the SYSTEM pushes of the creation */
#define BATCH        1000u /* members per GROUP_CREATE / GROUP_ADD (the proto bound) */
#define GID_LEN      65

#define CMD_CREATE (BENCH_CMD_SC << 0) /* create the groups whose member 0 is here */
#define CMD_START  (BENCH_CMD_SC << 1) /* the window opened: send */
#define CMD_STOP   (BENCH_CMD_SC << 2) /* the window closed */

/* One loop thread's part (its counters are summed by the main thread). */
typedef struct grp_thr {
    bench_ctr_t sent, send_failed, ack_ok, ack_err, lost;
    bench_ctr_t expected, deliveries, dups, stray, events, push_acks;
    bench_ctr_t sys_pushes, sys_late;
    bench_ctr_t sched_over, stopped;
    cim_GroupCreateReq *creq; /* scratch (65 KiB: 1000 ids) */
    cim_GroupUsersReq *ureq;  /* scratch */
    unsigned *mine;           /* its senders online at the window's start */
    unsigned nmine;
    uint8_t *body;
    bench_sched_t sched; /* open loop */
    uint64_t t_last_ack_ns, t_last_deliv_ns;
    hist_t ack_iv, push_iv;
} grp_thr_t;

typedef struct grp {
    unsigned G, M, S;
    char (*gid)[GID_LEN]; /* group ids, "" until created (by member 0's thread) */
    unsigned *ops_left;   /* per group: create/add answers still due (member 0's thread) */
    unsigned *g_open;     /* per group: members online when the window started (main) */
    bool *g_failed;       /* per group: a create/add failed (member 0's thread) */
    _Atomic unsigned groups_ready, groups_failed;
    _Atomic uint64_t sys_expected; /* SYSTEM pushes the creation causes */

    bool creating, settle_timed_out, open_loop;
    _Atomic bool settling, running, draining;
    unsigned *senders; /* connection indices of the senders online at the window's start */
    unsigned nsenders;
    _Atomic uint64_t tickets; /* --count, closed loop */

    uint64_t create_t0_ns, settle_t0_ns, settle_t1_ns;
    uint64_t sent_window, ack_ok_window, deliveries_window;
    uint64_t t_over_ns;
    uint64_t sent_last, ack_ok_last, deliveries_last;
    hist_t ack, push;       /* whole run (merged; under b->mu) */
    hist_t ack_iv, push_iv; /* since the last progress line */
} grp_t;

#define SUM(b, f) BENCH_SUM(b, grp_thr_t, f)

static unsigned min_u(unsigned a, unsigned b)
{
    return a < b ? a : b;
}

/* ---- users ----------------------------------------------------------------------------- */

static void member_name(char *out, size_t len, unsigned g, unsigned j)
{
    snprintf(out, len, "g%um%u", g, j);
}

static void login_hook(const bench_t *b, const bconn_t *bc, cim_LoginReq *req)
{
    member_name(req->user, sizeof(req->user), bc->idx / b->o.members, bc->idx % b->o.members);
}

/* ---- the end (main thread) ------------------------------------------------------------ */

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

/* SENDs not yet answered, over every thread (answers read first: see sc_c2c.c). */
static uint64_t inflight(const bench_t *b)
{
    uint64_t done = SUM(b, ack_ok) + SUM(b, ack_err) + SUM(b, lost);
    uint64_t sent = SUM(b, sent);

    return sent > done ? sent - done : 0;
}

static void window_over(bench_t *b)
{
    grp_t *s = b->sc_data;

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
    s->deliveries_window = SUM(b, deliveries);
    bench_phase(b, "drain", BENCH_DRAIN_S, end);
}

/* ---- sending (loop threads) ----------------------------------------------------------- */

static void on_ack(cimc_t *c, void *ctx, int status, uint32_t type, const uint8_t *body,
                   size_t len);

static int send_one(bench_t *b, bconn_t *bc, uint64_t t_ns)
{
    grp_t *s = b->sc_data;
    grp_thr_t *ts = bc->t->sc;
    cim_SendReq req = cim_SendReq_init_zero;
    cimc_bytes_t body = {ts->body, b->o.size};
    int rc;

    bench_stamp(b, bc, ts->body, t_ns, req.client_msg_id, sizeof(req.client_msg_id));
    req.conv_type = cim_ConvType_GROUP;
    snprintf(req.to, sizeof(req.to), "%s", s->gid[bc->idx / s->M]);
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

static bool may_send(const bench_t *b, grp_t *s, const bconn_t *bc)
{
    if (!s->running || b->stopping || !bc->open || bc->c == NULL)
        return false;
    return b->o.count == 0 ||
           atomic_fetch_add_explicit(&s->tickets, 1, memory_order_relaxed) < b->o.count;
}

static uint64_t thr_inflight(const grp_thr_t *ts)
{
    return bench_ctr_get(&ts->sent) - bench_ctr_get(&ts->ack_ok) - bench_ctr_get(&ts->ack_err) -
           bench_ctr_get(&ts->lost);
}

static void on_ack(cimc_t *c, void *ctx, int status, uint32_t type, const uint8_t *body, size_t len)
{
    bconn_t *bc = ctx;
    bench_t *b = bc->b;
    grp_t *s = b->sc_data;
    grp_thr_t *ts = bc->t->sc;
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
        unsigned online = s->g_open[bc->idx / s->M];
        /* expected before acked: the main thread reads the acks first */
        bench_ctr_add(&ts->expected, online > 0 ? online - 1 : 0);
        bench_ctr_add(&ts->ack_ok, 1);
        ts->t_last_ack_ns = now;
        if (have_t0 && now >= t0) {
            hist_record(&ts->ack_iv, now - t0);
            series_acc_lat(&bc->t->acc, now, 0, now - t0);
        }
    }
    if (!s->open_loop && status == 0) {
        if (may_send(b, s, bc))
            (void)send_one(b, bc, bench_now_ns()); /* a failure is counted there */
        else if (s->running && b->o.count != 0 && thr_inflight(ts) == 0)
            bench_notify(bc->t, BENCH_EV_CHECK);
    }
    if (s->draining)
        bench_notify(bc->t, BENCH_EV_CHECK);
}

static void sched_over(bench_sched_t *sc)
{
    grp_thr_t *ts = sc->t->sc;

    bench_ctr_add(&ts->sched_over, 1);
    bench_notify(sc->t, BENCH_EV_CHECK);
}

/* The window opened (CMD_START): this thread's senders start. */
static void thr_start(bench_thr_t *t)
{
    bench_t *b = t->b;
    grp_t *s = b->sc_data;
    grp_thr_t *ts = t->sc;
    uint64_t now;
    int rc;

    ts->mine = mem_alloc((size_t)s->nsenders * sizeof(*ts->mine) + 1);
    for (unsigned i = 0; i < s->nsenders; i++)
        if (b->conns[s->senders[i]].t == t)
            ts->mine[ts->nmine++] = s->senders[i];
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

/* ---- the window opens (main thread) --------------------------------------------------- */

/* The groups exist and their SYSTEM pushes arrived (or the wait timed out): measure. */
static void window_begin(bench_t *b)
{
    grp_t *s = b->sc_data;

    if (!s->settling)
        return;
    s->settling = false;
    s->settle_t1_ns = bench_now_ns();
    for (unsigned g = 0; g < s->G; g++) {
        s->g_open[g] = 0;
        for (unsigned j = 0; j < s->M; j++)
            s->g_open[g] += b->conns[g * s->M + j].open ? 1 : 0;
        for (unsigned j = 0; j < s->S; j++)
            if (b->conns[g * s->M + j].open)
                s->senders[s->nsenders++] = g * s->M + j;
    }
    if (s->nsenders == 0) {
        fprintf(stderr, "cimbench: group: no sender is online\n");
        fail_now(b);
        return;
    }
    bench_window_start(b);
    s->running = true;
    bench_phase(b, "run", b->o.duration_s, window_over);
    bench_post_all(b, CMD_START);
}

static void settle_timeout(bench_t *b)
{
    grp_t *s = b->sc_data;

    fprintf(stderr,
            "cimbench: group: %llu of %llu SYSTEM pushes of the creation arrived in %.0f s; "
            "measuring anyway\n",
            (unsigned long long)SUM(b, sys_pushes), (unsigned long long)s->sys_expected,
            SETTLE_MAX_S);
    s->settle_timed_out = true;
    window_begin(b);
}

/* Every group is created (or failed): settle, or give up. */
static void created(bench_t *b)
{
    grp_t *s = b->sc_data;

    s->creating = false;
    if (s->groups_failed != 0) {
        fprintf(stderr,
                "cimbench: group: %u of %u groups could not be created (see the errors; is "
                "cimd's --max_group_size at least --members %u?)\n",
                (unsigned)s->groups_failed, s->G, s->M);
        fail_now(b);
        return;
    }
    s->settle_t0_ns = bench_now_ns();
    s->settling = true;
    bench_phase(b, "settle", SETTLE_MAX_S, settle_timeout);
}

/* A thread moved something: the next phase? */
static void check(bench_t *b)
{
    grp_t *s = b->sc_data;

    if (s->creating && s->groups_ready + s->groups_failed == s->G)
        created(b);
    if (s->settling && !b->finishing && SUM(b, sys_pushes) >= s->sys_expected)
        window_begin(b);
    if (s->running && b->o.count != 0) {
        bool over;
        if (s->open_loop)
            over = SUM(b, sched_over) == b->nthr && inflight(b) == 0;
        else
            over = SUM(b, sent) + SUM(b, send_failed) >= b->o.count && inflight(b) == 0;
        if (over)
            window_over(b);
    }
    /* answers first (then expected is final), then the deliveries */
    if (s->draining && !b->finishing && SUM(b, stopped) == b->nthr && inflight(b) == 0 &&
        SUM(b, deliveries) >= SUM(b, expected))
        end(b);
}

/* ---- creating the groups (the thread of each group's member 0) ------------------------ */

/* One group's create/add answer is in: the group is ready once all are. */
static void group_op_done(bench_thr_t *t, unsigned g, bool ok)
{
    grp_t *s = t->b->sc_data;

    if (!ok)
        s->g_failed[g] = true;
    if (--s->ops_left[g] != 0)
        return;
    if (s->g_failed[g])
        s->groups_failed++;
    else
        s->groups_ready++;
    bench_notify(t, BENCH_EV_CHECK);
}

static void on_add(cimc_t *c, void *ctx, int status, uint32_t type, const uint8_t *body, size_t len)
{
    bconn_t *bc = ctx;
    bench_t *b = bc->b;
    grp_t *s = b->sc_data;
    cim_Result res = cim_Result_init_zero;
    bool ok = false;

    (void)c;
    (void)type;
    if (b->finishing)
        return;
    if (status < 0)
        bench_count_rc(b, status);
    else if (cimc_decode(cim_Result_fields, body, len, &res) < 0)
        bench_count_rc(b, RC_EPROTO);
    else if (res.code != cim_Code_OK)
        bench_count_code(b, (int)res.code);
    else
        ok = true;
    if (!ok && status == 0)
        fprintf(stderr, "cimbench: GROUP_ADD to group %s: %s %s\n", s->gid[bc->idx / s->M],
                cimc_code_str((int)res.code), res.reason);
    group_op_done(bc->t, bc->idx / s->M, ok);
}

/* Group @p g exists: add the members the create could not carry, BATCH per request. */
static void add_rest(bench_t *b, bconn_t *bc, unsigned g)
{
    grp_t *s = b->sc_data;
    grp_thr_t *ts = bc->t->sc;
    unsigned j = 1 + min_u(s->M - 1, BATCH), size = j;
    int rc;

    while (j < s->M) {
        unsigned n = min_u(s->M - j, BATCH);
        memset(ts->ureq, 0, sizeof(*ts->ureq));
        snprintf(ts->ureq->group_id, sizeof(ts->ureq->group_id), "%s", s->gid[g]);
        for (unsigned k = 0; k < n; k++)
            member_name(ts->ureq->users[k], sizeof(ts->ureq->users[k]), g, j + k);
        ts->ureq->users_count = (pb_size_t)n;
        s->ops_left[g]++;
        rc = cimc_async_request(bc->c, FT_GROUP_ADD, cim_GroupUsersReq_fields, ts->ureq,
                                FT_GROUP_ADD_ACK, on_add, bc, NULL);
        if (rc < 0) {
            bench_count_rc(b, rc);
            group_op_done(bc->t, g, false);
            return;
        }
        j += n;
        size += n;
        s->sys_expected += size; /* GE_ADDED, to every member after the change */
    }
}

static void on_create(cimc_t *c, void *ctx, int status, uint32_t type, const uint8_t *body,
                      size_t len)
{
    bconn_t *bc = ctx;
    bench_t *b = bc->b;
    grp_t *s = b->sc_data;
    cim_GroupRsp rsp = cim_GroupRsp_init_zero;
    unsigned g = bc->idx / s->M;
    bool ok = false;

    (void)c;
    (void)type;
    if (b->finishing)
        return;
    if (status < 0)
        bench_count_rc(b, status);
    else if (cimc_decode(cim_GroupRsp_fields, body, len, &rsp) < 0)
        bench_count_rc(b, RC_EPROTO);
    else if (rsp.code != cim_Code_OK)
        bench_count_code(b, (int)rsp.code);
    else if (!rsp.has_group || rsp.group.group_id[0] == '\0')
        bench_count_rc(b, RC_EPROTO);
    else
        ok = true;
    if (!ok && status == 0)
        fprintf(stderr, "cimbench: GROUP_CREATE of group %u: %s %s\n", g,
                cimc_code_str((int)rsp.code), rsp.reason);
    if (ok) {
        snprintf(s->gid[g], GID_LEN, "%s", rsp.group.group_id);
        s->sys_expected += 1 + min_u(s->M - 1, BATCH); /* GE_CREATED, to every member */
        add_rest(b, bc, g);
    }
    group_op_done(bc->t, g, ok);
}

/* CMD_CREATE: create the groups whose member 0 lives on @p t. */
static void thr_create(bench_thr_t *t)
{
    bench_t *b = t->b;
    grp_t *s = b->sc_data;
    grp_thr_t *ts = t->sc;

    for (unsigned g = 0; g < s->G && !b->finishing; g++) {
        bconn_t *bc = &b->conns[g * s->M];
        unsigned n = min_u(s->M - 1, BATCH);
        int rc;

        if (bc->t != t)
            continue;
        memset(ts->creq, 0, sizeof(*ts->creq));
        snprintf(ts->creq->name, sizeof(ts->creq->name), "bench-%08x-g%u", (unsigned)b->run_id, g);
        for (unsigned k = 0; k < n; k++)
            member_name(ts->creq->members[k], sizeof(ts->creq->members[k]), g, 1 + k);
        ts->creq->members_count = (pb_size_t)n;
        s->ops_left[g] = 1;
        rc = cimc_async_request(bc->c, FT_GROUP_CREATE, cim_GroupCreateReq_fields, ts->creq,
                                FT_GROUP_CREATE_ACK, on_create, bc, NULL);
        if (rc < 0) {
            bench_count_rc(b, rc);
            group_op_done(t, g, false);
        }
    }
}

static void setup_done(bench_t *b)
{
    grp_t *s = b->sc_data;
    bench_pool_counts_t pc;

    bench_pool_counts(b, &pc);
    if (pc.open_failed != 0) {
        /* a member that never logged in may not exist: GROUP_CREATE would be NOT_FOUND */
        fprintf(stderr, "cimbench: group: %llu of %u members could not log in\n",
                (unsigned long long)pc.open_failed, b->nconns);
        fail_now(b);
        return;
    }
    s->creating = true;
    s->create_t0_ns = bench_now_ns();
    bench_phase(b, "create", CREATE_MAX_S, b->sc->stop);
    bench_post_all(b, CMD_CREATE);
}

/* ---- pushes (loop threads) ------------------------------------------------------------ */

static void on_push(bench_t *b, bconn_t *bc, const cimc_push_t *p)
{
    grp_t *s = b->sc_data;
    grp_thr_t *ts = bc->t->sc;
    uint64_t now, lat;
    bool dup;

    if (p->type == FT_EVENT) {
        bench_ctr_add(&ts->events, 1);
        return;
    }
    if (p->type != FT_PUSH)
        return;
    dup = p->u.msg.msg_id <= bc->push_max;
    if (dup)
        bench_ctr_add(&ts->dups, 1);
    else
        bc->push_max = p->u.msg.msg_id;
    if (p->u.msg.msg_type == cim_MsgType_SYSTEM) {
        if (!dup) {
            bench_ctr_add(&ts->sys_pushes, 1);
            if (s->running || s->draining)
                bench_ctr_add(&ts->sys_late, 1);
        }
        /* always (they are few): a push racing the main thread's switch to settling
         * must not be missed */
        bench_notify(bc->t, BENCH_EV_CHECK);
    } else if (!bench_push_timed(b, p, &now, &lat)) {
        bench_ctr_add(&ts->stray, 1);
    } else if (!dup) {
        bench_ctr_add(&ts->deliveries, 1);
        ts->t_last_deliv_ns = now;
        hist_record(&ts->push_iv, lat);
        series_acc_op(&bc->t->acc, now, 1);
        series_acc_lat(&bc->t->acc, now, 1, lat);
    }
    bench_push_ack(b, bc, &ts->push_acks);
    if (s->draining)
        bench_notify(bc->t, BENCH_EV_CHECK);
}

/* ---- scenario ------------------------------------------------------------------------- */

static void thr_cmd(bench_thr_t *t, unsigned cmds)
{
    grp_thr_t *ts = t->sc;

    if ((cmds & CMD_CREATE) != 0)
        thr_create(t);
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
    grp_t *s = t->b->sc_data;
    grp_thr_t *ts = t->sc;

    bench_hist_fold(t->b, &s->ack, &s->ack_iv, &ts->ack_iv, into_iv);
    bench_hist_fold(t->b, &s->push, &s->push_iv, &ts->push_iv, into_iv);
}

static void thr_snap(bench_thr_t *t)
{
    merge_iv(t, true);
}

static void thr_finish(bench_thr_t *t)
{
    grp_thr_t *ts = t->sc;

    merge_iv(t, false);
    bench_sched_close(&ts->sched);
}

static void stop(bench_t *b)
{
    grp_t *s = b->sc_data;

    b->stopping = true;
    if (s->running)
        window_over(b);
    else if (!s->draining) {
        if (s->creating)
            fprintf(stderr, "cimbench: group: creating the groups did not finish\n");
        end(b); /* still opening, creating or settling */
    }
}

static int start(bench_t *b)
{
    grp_t *s = mem_calloc(sizeof(*s));
    uint64_t n = (uint64_t)b->o.groups * b->o.members;
    unsigned per_source;

    b->sc_data = s;
    s->G = b->o.groups;
    s->M = b->o.members;
    s->S = b->o.senders;
    if (s->S > s->M) {
        fprintf(stderr, "cimbench: group: --senders %u is more than --members %u\n", s->S, s->M);
        return -1;
    }
    if (n + BENCH_FD_RESERVE > (uint64_t)b->nofile) {
        fprintf(stderr,
                "cimbench: group: %llu members online need more descriptors than this process "
                "may open (%ld); cimd needs as many\n",
                (unsigned long long)n, b->nofile);
        return -1;
    }
    b->o.users = (unsigned)n;
    per_source = (unsigned)((n + b->o.sources - 1) / b->o.sources);
    if (per_source > BENCH_SERVER_PER_IP)
        fprintf(stderr,
                "cimbench: %u connections per source address: more than cimd's default "
                "max_conns_per_ip (%u); raise --sources or the server's cap\n",
                per_source, BENCH_SERVER_PER_IP);
    hist_reset(&s->ack);
    hist_reset(&s->push);
    hist_reset(&s->ack_iv);
    hist_reset(&s->push_iv);
    s->gid = mem_calloc((size_t)s->G * sizeof(*s->gid));
    s->ops_left = mem_calloc((size_t)s->G * sizeof(*s->ops_left));
    s->g_open = mem_calloc((size_t)s->G * sizeof(*s->g_open));
    s->g_failed = mem_calloc((size_t)s->G * sizeof(*s->g_failed));
    s->senders = mem_calloc((size_t)s->G * s->S * sizeof(*s->senders));
    s->open_loop = b->o.rate > 0;
    for (unsigned i = 0; i < b->nthr; i++) {
        grp_thr_t *ts = mem_calloc(sizeof(*ts));
        ts->creq = mem_alloc(sizeof(*ts->creq));
        ts->ureq = mem_alloc(sizeof(*ts->ureq));
        ts->body = mem_alloc(b->o.size);
        memset(ts->body, 'x', b->o.size);
        ts->sched.tfd = -1;
        hist_reset(&ts->ack_iv);
        hist_reset(&ts->push_iv);
        hist_reset(&ts->sched.lag);
        b->thr[i].sc = ts;
    }
    b->op_name = "delivery";
    b->tput_unit = "deliveries/s";
    b->series_on = true;
    b->series_hist[0] = "ack";
    b->series_hist[1] = "push";
    bench_pool_open(b, (unsigned)n); /* member j of group g on connection g*M + j */
    return 0;
}

static void progress(bench_t *b, char *buf, size_t len, double dt)
{
    grp_t *s = b->sc_data;
    uint64_t sent = SUM(b, sent), ack_ok = SUM(b, ack_ok), deliv = SUM(b, deliveries);
    char r1[32], r2[32], r3[32];

    if (s->creating) {
        snprintf(buf, len, "groups ready %u/%u  failed %u", (unsigned)s->groups_ready, s->G,
                 (unsigned)s->groups_failed);
        return;
    }
    if (s->settling) {
        snprintf(buf, len, "system pushes %llu/%llu", (unsigned long long)SUM(b, sys_pushes),
                 (unsigned long long)s->sys_expected);
        return;
    }
    if (!s->running && !s->draining) {
        bench_pool_counts_t pc;
        bench_pool_counts(b, &pc);
        snprintf(buf, len, "open %llu/%u  connecting %llu  failed %llu",
                 (unsigned long long)pc.open_now, b->nconns, (unsigned long long)pc.connecting,
                 (unsigned long long)pc.open_failed);
        return;
    }
    /* undelivered: expected by the acks so far minus received (< 0: pushes ahead of acks) */
    snprintf(buf, len,
             "sent %s/s  ok %s/s  deliv %s/s  inflight %llu  undelivered %lld  err %llu  "
             "ack p50 %.2f p99 %.2f  push p50 %.2f p99 %.2f ms",
             bench_si(r1, sizeof(r1), (double)(sent - s->sent_last) / dt),
             bench_si(r2, sizeof(r2), (double)(ack_ok - s->ack_ok_last) / dt),
             bench_si(r3, sizeof(r3), (double)(deliv - s->deliveries_last) / dt),
             (unsigned long long)inflight(b), (long long)(SUM(b, expected) - deliv),
             (unsigned long long)bench_errors(b), (double)hist_percentile(&s->ack_iv, 50) / 1e6,
             (double)hist_percentile(&s->ack_iv, 99) / 1e6,
             (double)hist_percentile(&s->push_iv, 50) / 1e6,
             (double)hist_percentile(&s->push_iv, 99) / 1e6);
    s->sent_last = sent;
    s->ack_ok_last = ack_ok;
    s->deliveries_last = deliv;
    hist_reset(&s->ack_iv);
    hist_reset(&s->push_iv);
}

static double secs(uint64_t t0, uint64_t t1)
{
    return t0 != 0 && t1 > t0 ? (double)(t1 - t0) / 1e9 : 0.0;
}

static void report(bench_t *b, report_t *r)
{
    grp_t *s = b->sc_data;
    uint64_t t_last_ack = 0, t_last_deliv = 0, skipped = 0;
    uint64_t ack_ok = SUM(b, ack_ok), deliveries = SUM(b, deliveries);
    uint64_t expected = SUM(b, expected), dups = SUM(b, dups), unans = inflight(b);
    uint64_t online = 0, unconfirmed = 0, missing;
    int64_t behind = 0;
    hist_t *lag = mem_alloc(sizeof(*lag));
    double span, ack_span, win;

    hist_reset(lag);
    for (unsigned i = 0; i < b->nthr; i++) {
        grp_thr_t *ts = b->thr[i].sc;
        if (ts->t_last_ack_ns > t_last_ack)
            t_last_ack = ts->t_last_ack_ns;
        if (ts->t_last_deliv_ns > t_last_deliv)
            t_last_deliv = ts->t_last_deliv_ns;
    }
    span = secs(b->w_t0_ns, t_last_deliv);
    ack_span = secs(b->w_t0_ns, t_last_ack);
    win = secs(b->w_t0_ns, s->t_over_ns);
    for (unsigned i = 0; i < b->nthr; i++) {
        grp_thr_t *ts = b->thr[i].sc;
        skipped += ts->sched.skipped;
        behind += bench_sched_behind(&ts->sched, win);
        hist_merge(lag, &ts->sched.lag);
    }
    missing = expected > deliveries ? expected - deliveries : 0;
    for (unsigned g = 0; g < s->G && s->g_open != NULL; g++)
        online += s->g_open[g];
    /* Deliveries beyond the expected ones are of messages whose SEND_ACK never came (still
     * unanswered when the drain ended, or lost with a connection): they may or may not
     * have been stored, so they are neither expected nor wrong. */
    if (deliveries > expected)
        unconfirmed = deliveries - expected;
    b->ops = deliveries;
    b->tput = span > 0 ? (double)deliveries / span : 0.0;
    b->mismatch += missing + dups;
    b->unanswered += unans;
    report_str(r, "group", "mode", s->open_loop ? "open" : "closed");
    report_int(r, "group", "groups", s->G);
    report_int(r, "group", "members", s->M);
    report_int(r, "group", "members_online", (int64_t)online);
    report_int(r, "group", "senders_online", s->nsenders);
    if (s->create_t0_ns != 0)
        report_num(r, "group", "create_s", secs(s->create_t0_ns, s->settle_t0_ns));
    if (s->settle_t0_ns != 0)
        report_num(r, "group", "settle_s", secs(s->settle_t0_ns, s->settle_t1_ns));
    report_int(r, "group", "system_pushes_expected", (int64_t)s->sys_expected);
    report_int(r, "group", "system_pushes", (int64_t)SUM(b, sys_pushes));
    report_int(r, "group", "system_pushes_in_window", (int64_t)SUM(b, sys_late));
    if (s->open_loop)
        report_num(r, "group", "offered_rate", b->o.rate);
    report_int(r, "group", "sent", (int64_t)SUM(b, sent));
    report_int(r, "group", "acked_ok", (int64_t)ack_ok);
    report_int(r, "group", "acked_error", (int64_t)SUM(b, ack_err));
    report_int(r, "group", "lost", (int64_t)SUM(b, lost));
    report_int(r, "group", "unanswered", (int64_t)unans);
    report_int(r, "group", "send_failed", (int64_t)SUM(b, send_failed));
    if (s->open_loop) {
        report_int(r, "group", "skipped", (int64_t)skipped);
        report_int(r, "group", "behind_schedule", behind);
    }
    report_int(r, "group", "deliveries_expected", (int64_t)expected);
    report_int(r, "group", "deliveries", (int64_t)deliveries);
    report_int(r, "group", "deliveries_missing", (int64_t)missing);
    report_int(r, "group", "deliveries_unconfirmed", (int64_t)unconfirmed);
    report_int(r, "group", "duplicates", (int64_t)dups);
    report_int(r, "group", "pushes_stray", (int64_t)SUM(b, stray));
    report_int(r, "group", "events", (int64_t)SUM(b, events));
    report_int(r, "group", "push_acks_sent", (int64_t)SUM(b, push_acks));
    report_num(r, "group", "window_s", win);
    report_num(r, "group", "first_send_to_last_delivery_s", span);
    report_num(r, "group", "msgs_acked_per_s", ack_span > 0 ? (double)ack_ok / ack_span : 0.0);
    report_num(r, "group", "deliveries_per_s", b->tput);
    if (win > 0)
        report_num(r, "group", "deliveries_per_s_in_window", (double)s->deliveries_window / win);
    if (b->w_have_srv && ack_ok != 0)
        report_num(r, "group", "server_cpu_us_per_message",
                   (double)(b->w_srv_cpu1 - b->w_srv_cpu0) / (double)ack_ok);
    if (ack_ok != 0)
        report_num(r, "group", "bench_cpu_us_per_message",
                   (double)(b->w_self_cpu1 - b->w_self_cpu0) / (double)ack_ok);
    report_hist(r, "latency_us", "send_ack", &s->ack);
    report_hist(r, "latency_us", "send_push", &s->push);
    if (s->open_loop)
        report_hist(r, "latency_us", "sched_lag", lag);
    mem_free(lag);
    mem_free(s->gid);
    mem_free(s->ops_left);
    mem_free(s->g_open);
    mem_free(s->g_failed);
    mem_free(s->senders);
    s->gid = NULL;
    s->ops_left = s->g_open = s->senders = NULL;
    s->g_failed = NULL;
    for (unsigned i = 0; i < b->nthr; i++) {
        grp_thr_t *ts = b->thr[i].sc;
        mem_free(ts->creq);
        mem_free(ts->ureq);
        mem_free(ts->mine);
        mem_free(ts->body);
        ts->creq = NULL;
        ts->ureq = NULL;
        ts->mine = NULL;
        ts->body = NULL;
    }
}

const scenario_t sc_group = {
    .name = "group",
    .summary = "G groups of M online members, senders to each: deliveries/s, send->push latency",
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
    .login = login_hook,
};
