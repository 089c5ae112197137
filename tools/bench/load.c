/* load: what the message scenarios (sc_c2c.c, sc_group.c) share: the open-loop timerfd
 * scheduler and the body stamps (bench.h describes each). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "bench.h"
#include "core/frame.h"
#include "core/rc.h"

#define TICK_MIN_NS 100000ull /* open loop: at least 100 µs between scheduler wake-ups */

/* ---- the open-loop scheduler --------------------------------------------------------- */

int bench_sched_init(bench_thr_t *t, bench_sched_t *s, bool open_loop, double rate, uint64_t count)
{
    int rc;

    s->t = t;
    s->tfd = -1;
    s->rate = rate;
    s->count = count;
    hist_reset(&s->lag);
    if (!open_loop)
        return 0;
    if ((s->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) < 0) {
        rc = -errno;
        fprintf(stderr, "cimbench: timerfd_create: %s\n", rc_str(rc));
        return rc;
    }
    if ((rc = uv_poll_init(t->loop, &s->tpoll, s->tfd)) < 0) {
        (void)close(s->tfd); /* best effort: unused */
        s->tfd = -1;
        return rc;
    }
    s->tpoll.data = s;
    s->init = true;
    return 0;
}

/* Arm the timerfd for the monotonic time @p at_ns. */
static int arm(const bench_sched_t *s, uint64_t at_ns)
{
    struct itimerspec its;

    memset(&its, 0, sizeof(its));
    its.it_value.tv_sec = (time_t)(at_ns / 1000000000u);
    its.it_value.tv_nsec = (long)(at_ns % 1000000000u);
    return timerfd_settime(s->tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0 ? -errno : 0;
}

/* The schedule is over (count reached) or failed: tell the scenario once. */
static void over(bench_sched_t *s)
{
    if (s->over_called)
        return;
    s->over_called = true;
    bench_sched_stop(s);
    s->over(s);
}

/* Send what the clock says is due, each stamped with its scheduled time, and re-arm for
 * the next one. */
static void on_tick(uv_poll_t *h, int status, int events)
{
    bench_sched_t *s = h->data;
    bench_t *b = s->t->b;
    uint64_t now = bench_now_ns(), due, expirations, next;
    double per_ns = s->rate / 1e9;
    int rc;

    (void)status;
    (void)events;
    if (read(s->tfd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN) {
        fprintf(stderr, "cimbench: timerfd: %s\n", strerror(errno));
        bench_fail(s->t);
        over(s);
        return;
    }
    if (!*s->running || b->stopping || s->nconns == 0)
        return;
    due = (uint64_t)((double)(now - b->w_t0_ns) * per_ns) + 1; /* sends 0..due-1 are due */
    if (s->count != 0 && due > s->count)
        due = s->count;
    while (s->issued < due) {
        uint64_t sched = b->w_t0_ns + (uint64_t)((double)s->issued / per_ns);
        bconn_t *bc = &b->conns[s->conns[s->issued % s->nconns]];
        s->issued++;
        if (!bc->open || bc->c == NULL) {
            s->skipped++;
            continue;
        }
        hist_record(&s->lag, now > sched ? now - sched : 0);
        (void)s->send(b, bc, sched); /* a failure is counted there */
    }
    if (s->count != 0 && s->issued >= s->count) {
        over(s);
        return;
    }
    next = b->w_t0_ns + (uint64_t)((double)s->issued / per_ns);
    now = bench_now_ns();
    if (next < now + TICK_MIN_NS)
        next = now + TICK_MIN_NS;
    if ((rc = arm(s, next)) < 0) {
        fprintf(stderr, "cimbench: timerfd: %s\n", rc_str(rc));
        bench_fail(s->t);
        over(s);
    }
}

void bench_sched_start(bench_sched_t *s, const _Atomic bool *running, const unsigned *conns,
                       unsigned n, int (*send)(bench_t *b, bconn_t *bc, uint64_t t_ns),
                       void (*over_cb)(bench_sched_t *s))
{
    int rc;

    s->running = running;
    s->conns = conns;
    s->nconns = n;
    s->send = send;
    s->over = over_cb;
    if (n == 0 || s->rate <= 0 || (s->count == 0 && s->t->b->o.count != 0)) {
        over(s); /* nothing for this thread to send */
        return;
    }
    if ((rc = uv_poll_start(&s->tpoll, UV_READABLE, on_tick)) < 0 ||
        (rc = arm(s, s->t->b->w_t0_ns)) < 0) {
        fprintf(stderr, "cimbench: scheduler: %s\n", rc_str(rc));
        bench_fail(s->t);
        over(s);
    }
}

void bench_sched_stop(bench_sched_t *s)
{
    if (s->init)
        (void)uv_poll_stop(&s->tpoll); /* cannot fail on an initialised handle */
}

static void on_tpoll_close(uv_handle_t *h)
{
    bench_sched_t *s = h->data;

    (void)close(s->tfd); /* best effort: nothing was written through it */
    s->tfd = -1;
}

void bench_sched_close(bench_sched_t *s)
{
    if (s->init)
        uv_close((uv_handle_t *)&s->tpoll, on_tpoll_close);
    s->init = false;
}

int64_t bench_sched_behind(const bench_sched_t *s, double win_s)
{
    uint64_t due = (uint64_t)(win_s * s->rate);

    if (s->count != 0 && due > s->count)
        due = s->count;
    return due > s->issued ? (int64_t)(due - s->issued) : 0;
}

/* ---- messages ------------------------------------------------------------------------ */

void bench_stamp(const bench_t *b, const bconn_t *bc, uint8_t *body, uint64_t t_ns, char *cmid,
                 size_t cmid_len)
{
    memcpy(body, &t_ns, sizeof(t_ns));
    memcpy(body + 8, &b->run_id, sizeof(b->run_id));
    snprintf(cmid, cmid_len, "%08x-%u-%llu", (unsigned)b->run_id, bc->idx,
             (unsigned long long)bc->seq);
}

bool bench_push_timed(const bench_t *b, const cimc_push_t *p, uint64_t *now, uint64_t *lat_ns)
{
    uint64_t t0;
    uint32_t run;

    if (p->body_len < 12)
        return false;
    memcpy(&t0, p->body_data, sizeof(t0));
    memcpy(&run, p->body_data + 8, sizeof(run));
    *now = bench_now_ns();
    if (run != b->run_id || *now < t0)
        return false;
    *lat_ns = *now - t0;
    return true;
}

void bench_push_ack(bench_t *b, bconn_t *bc, bench_ctr_t *acks)
{
    cim_DeliveredReq d = cim_DeliveredReq_init_zero;
    int rc;

    if (b->o.ack_every == 0 || ++bc->push_unacked < b->o.ack_every || bc->c == NULL)
        return;
    d.up_to_msg_id = bc->push_max;
    bc->push_unacked = 0;
    if ((rc = cimc_async_send_frame(bc->c, FT_PUSH_ACK, cim_DeliveredReq_fields, &d)) < 0)
        bench_count_rc(b, rc);
    else
        bench_ctr_add(acks, 1);
}
