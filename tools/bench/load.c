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

int bench_sched_init(bench_t *b, bench_sched_t *t, bool open_loop)
{
    int rc;

    t->b = b;
    t->tfd = -1;
    hist_reset(&t->lag);
    if (!open_loop)
        return 0;
    if ((t->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) < 0) {
        rc = -errno;
        fprintf(stderr, "cimbench: timerfd_create: %s\n", rc_str(rc));
        return rc;
    }
    if ((rc = uv_poll_init(&b->loop, &t->tpoll, t->tfd)) < 0) {
        (void)close(t->tfd); /* best effort: unused */
        t->tfd = -1;
        return rc;
    }
    t->tpoll.data = t;
    t->init = true;
    return 0;
}

/* Arm the timerfd for the monotonic time @p at_ns. */
static int arm(const bench_sched_t *t, uint64_t at_ns)
{
    struct itimerspec its;

    memset(&its, 0, sizeof(its));
    its.it_value.tv_sec = (time_t)(at_ns / 1000000000u);
    its.it_value.tv_nsec = (long)(at_ns % 1000000000u);
    return timerfd_settime(t->tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0 ? -errno : 0;
}

/* Send what the clock says is due, each stamped with its scheduled time, and re-arm for
 * the next one. */
static void on_tick(uv_poll_t *h, int status, int events)
{
    bench_sched_t *t = h->data;
    bench_t *b = t->b;
    uint64_t now = bench_now_ns(), due, expirations, next;
    double per_ns = b->o.rate / 1e9;
    int rc;

    (void)status;
    (void)events;
    if (read(t->tfd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN) {
        fprintf(stderr, "cimbench: timerfd: %s\n", strerror(errno));
        b->failed = true;
        t->over(b);
        return;
    }
    if (!*t->running || b->stopping)
        return;
    due = (uint64_t)((double)(now - b->w_t0_ns) * per_ns) + 1; /* sends 0..due-1 are due */
    if (b->o.count != 0 && due > b->o.count)
        due = b->o.count;
    while (t->issued < due) {
        uint64_t sched = b->w_t0_ns + (uint64_t)((double)t->issued / per_ns);
        bconn_t *bc = &b->conns[t->conns[t->issued % t->nconns]];
        t->issued++;
        if (!bc->open || bc->c == NULL) {
            t->skipped++;
            continue;
        }
        hist_record(&t->lag, now > sched ? now - sched : 0);
        (void)t->send(b, bc, sched); /* a failure is counted there */
    }
    if (b->o.count != 0 && t->issued >= b->o.count) {
        t->over(b);
        return;
    }
    next = b->w_t0_ns + (uint64_t)((double)t->issued / per_ns);
    now = bench_now_ns();
    if (next < now + TICK_MIN_NS)
        next = now + TICK_MIN_NS;
    if ((rc = arm(t, next)) < 0) {
        fprintf(stderr, "cimbench: timerfd: %s\n", rc_str(rc));
        b->failed = true;
        t->over(b);
    }
}

void bench_sched_start(bench_sched_t *t, const bool *running, const unsigned *conns,
                       unsigned n, int (*send)(bench_t *b, bconn_t *bc, uint64_t t_ns),
                       void (*over)(bench_t *b))
{
    int rc;

    t->running = running;
    t->conns = conns;
    t->nconns = n;
    t->send = send;
    t->over = over;
    if ((rc = uv_poll_start(&t->tpoll, UV_READABLE, on_tick)) < 0 ||
        (rc = arm(t, t->b->w_t0_ns)) < 0) {
        fprintf(stderr, "cimbench: scheduler: %s\n", rc_str(rc));
        t->b->failed = true;
        over(t->b);
    }
}

void bench_sched_stop(bench_sched_t *t)
{
    if (t->init)
        (void)uv_poll_stop(&t->tpoll); /* cannot fail on an initialised handle */
}

static void on_tpoll_close(uv_handle_t *h)
{
    bench_sched_t *t = h->data;

    (void)close(t->tfd); /* best effort: nothing was written through it */
    t->tfd = -1;
}

void bench_sched_close(bench_sched_t *t)
{
    if (t->init)
        uv_close((uv_handle_t *)&t->tpoll, on_tpoll_close);
    t->init = false;
}

int64_t bench_sched_behind(const bench_t *b, const bench_sched_t *t, double win_s)
{
    uint64_t due = (uint64_t)(win_s * b->o.rate);

    if (b->o.count != 0 && due > b->o.count)
        due = b->o.count;
    return due > t->issued ? (int64_t)(due - t->issued) : 0;
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

void bench_push_ack(bench_t *b, bconn_t *bc, uint64_t *acks)
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
        (*acks)++;
}
