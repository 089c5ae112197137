/* mbox: order, bounds, close, the empty -> non-empty wake-up, and many producers into one
 * consumer loop (also run under TSan). */
#include "core/mbox.h"

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>

#include "core/mem.h"
#include "support/test.h"

typedef struct msg {
    mbox_node_t node;
    uint32_t producer;
    uint32_t seq;
} msg_t;

static msg_t *msg_of(mbox_node_t *n)
{
    return n == NULL ? NULL : container_of(n, msg_t, node);
}

static int closed_calls;

static void on_closed(uv_handle_t *h)
{
    (void)h;
    closed_calls++;
}

static void on_wake_unused(mbox_t *box)
{
    (void)box;
}

/* One non-blocking loop turn. uv_run's result only says that handles are still active
 * (the box's async handle always is), so it is not checked. */
static void run_once(uv_loop_t *loop)
{
    (void)uv_run(loop, UV_RUN_NOWAIT);
}

/* Close the box and the loop; the loop must have nothing else left. */
static void close_all(uv_loop_t *loop, mbox_t *box)
{
    closed_calls = 0;
    mbox_close(box, on_closed);
    ASSERT_OK(uv_run(loop, UV_RUN_DEFAULT));
    ASSERT_EQ(closed_calls, 1);
    ASSERT_OK(uv_loop_close(loop));
}

TEST(mbox_single_thread_order)
{
    uv_loop_t loop;
    mbox_t box;
    msg_t m[5];

    ASSERT_OK(uv_loop_init(&loop));
    ASSERT_RC(mbox_init(&box, &loop, 0, on_wake_unused), UV_EINVAL);
    ASSERT_OK(mbox_init(&box, &loop, 16, on_wake_unused));
    ASSERT_NULL(mbox_pop(&box));
    for (uint32_t i = 0; i < 5; i++) {
        m[i].seq = i;
        ASSERT_OK(mbox_send(&box, &m[i].node));
    }
    ASSERT_EQ(atomic_load(&box.count), 5);
    for (uint32_t i = 0; i < 5; i++) {
        msg_t *got = msg_of(mbox_pop(&box));
        ASSERT_NOT_NULL(got);
        ASSERT_TRUE(got == &m[i]);
    }
    ASSERT_NULL(mbox_pop(&box));
    ASSERT_NULL(mbox_pop(&box));
    ASSERT_EQ(atomic_load(&box.count), 0);
    /* Interleaved sends and pops, through the stub's re-insertion. */
    for (uint32_t round = 0; round < 100; round++) {
        ASSERT_OK(mbox_send(&box, &m[round % 5].node));
        ASSERT_OK(mbox_send(&box, &m[(round + 1) % 5].node));
        ASSERT_TRUE(msg_of(mbox_pop(&box)) == &m[round % 5]);
        ASSERT_TRUE(msg_of(mbox_pop(&box)) == &m[(round + 1) % 5]);
        ASSERT_NULL(mbox_pop(&box));
    }
    close_all(&loop, &box);
}

TEST(mbox_full_and_force)
{
    uv_loop_t loop;
    mbox_t box;
    msg_t m[6];

    ASSERT_OK(uv_loop_init(&loop));
    ASSERT_OK(mbox_init(&box, &loop, 3, on_wake_unused));
    for (int i = 0; i < 3; i++)
        ASSERT_OK(mbox_send(&box, &m[i].node));
    ASSERT_RC(mbox_send(&box, &m[3].node), RC_EFULL);
    ASSERT_EQ(atomic_load(&box.count), 3);
    /* Force ignores the bound; plain sends still refuse while over it. */
    ASSERT_OK(mbox_send_force(&box, &m[3].node));
    ASSERT_OK(mbox_send_force(&box, &m[4].node));
    ASSERT_EQ(atomic_load(&box.count), 5);
    ASSERT_RC(mbox_send(&box, &m[5].node), RC_EFULL);
    for (int i = 0; i < 2; i++)
        ASSERT_TRUE(msg_of(mbox_pop(&box)) == &m[i]);
    ASSERT_RC(mbox_send(&box, &m[5].node), RC_EFULL); /* 3 queued: still full */
    ASSERT_TRUE(msg_of(mbox_pop(&box)) == &m[2]);
    ASSERT_OK(mbox_send(&box, &m[5].node)); /* 2 queued: room for one */
    ASSERT_RC(mbox_send(&box, &m[0].node), RC_EFULL);
    ASSERT_TRUE(msg_of(mbox_pop(&box)) == &m[3]);
    ASSERT_TRUE(msg_of(mbox_pop(&box)) == &m[4]);
    ASSERT_TRUE(msg_of(mbox_pop(&box)) == &m[5]);
    ASSERT_NULL(mbox_pop(&box));
    ASSERT_EQ(atomic_load(&box.count), 0);
    close_all(&loop, &box);
}

TEST(mbox_closed)
{
    uv_loop_t loop;
    mbox_t box;
    msg_t m[3];

    ASSERT_OK(uv_loop_init(&loop));
    ASSERT_OK(mbox_init(&box, &loop, 8, on_wake_unused));
    ASSERT_OK(mbox_send(&box, &m[0].node));
    closed_calls = 0;
    mbox_close(&box, on_closed);
    ASSERT_RC(mbox_send(&box, &m[1].node), RC_ECLOSED);
    ASSERT_RC(mbox_send_force(&box, &m[2].node), RC_ECLOSED);
    ASSERT_OK(uv_run(&loop, UV_RUN_DEFAULT));
    ASSERT_EQ(closed_calls, 1);
    /* What was queued before the close is still the owner's to drain. */
    ASSERT_TRUE(msg_of(mbox_pop(&box)) == &m[0]);
    ASSERT_NULL(mbox_pop(&box));
    ASSERT_OK(uv_loop_close(&loop));
}

/* --- wake-ups on one thread --------------------------------------------------------- */

typedef struct drain {
    int wakes;
    int got;
    int budget; /* pops per wake-up before mbox_rewake; 0 = drain to NULL */
    msg_t *order[64];
} drain_t;

static void on_wake_drain(mbox_t *box)
{
    drain_t *d = box->data;
    mbox_node_t *n;
    int k = 0;

    d->wakes++;
    while (d->budget == 0 || k < d->budget) {
        if ((n = mbox_pop(box)) == NULL)
            return;
        d->order[d->got++] = msg_of(n);
        k++;
    }
    mbox_rewake(box);
}

TEST(mbox_wake_only_on_edge)
{
    uv_loop_t loop;
    mbox_t box;
    drain_t d = {0};
    msg_t m[40];

    ASSERT_OK(uv_loop_init(&loop));
    ASSERT_OK(mbox_init(&box, &loop, 64, on_wake_drain));
    box.data = &d;
    /* Nothing queued: no wake-up. */
    run_once(&loop);
    ASSERT_EQ(d.wakes, 0);
    /* 20 sends into a sleeping box: the first wakes it, the other 19 cost nothing. */
    for (int i = 0; i < 20; i++)
        ASSERT_OK(mbox_send(&box, &m[i].node));
    ASSERT_EQ(atomic_load(&box.sleeping), 0);
    run_once(&loop);
    ASSERT_EQ(d.wakes, 1);
    ASSERT_EQ(d.got, 20);
    for (int i = 0; i < 20; i++)
        ASSERT_TRUE(d.order[i] == &m[i]);
    ASSERT_EQ(atomic_load(&box.sleeping), 1); /* the drain ended by arming it */
    run_once(&loop);
    ASSERT_EQ(d.wakes, 1);
    /* The next edge wakes again. */
    ASSERT_OK(mbox_send(&box, &m[20].node));
    run_once(&loop);
    ASSERT_EQ(d.wakes, 2);
    ASSERT_EQ(d.got, 21);

    /* A budget of 4 per turn: mbox_rewake brings the consumer back until it is empty. */
    d.budget = 4;
    for (int i = 21; i < 31; i++)
        ASSERT_OK(mbox_send(&box, &m[i].node));
    for (int turn = 0; turn < 10 && d.got < 31; turn++)
        run_once(&loop);
    ASSERT_EQ(d.got, 31);
    for (int i = 0; i < 31; i++)
        ASSERT_TRUE(d.order[i] == &m[i]);
    ASSERT_EQ(d.wakes, 2 + 3); /* 4 + 4 + 2 (the last turn ends with NULL) */
    close_all(&loop, &box);
}

/* A producer stopped between its exchange on head and its link (Vyukov's inconsistent
 * state), simulated on one thread through the public fields: mbox_pop must report empty
 * and leave the box armed, so that the producer's wake-up check, which follows its link,
 * wakes the consumer. */
static void half_push_case(uv_loop_t *loop, mbox_t *box, drain_t *d, msg_t *m, msg_t *first)
{
    int base = d->got;

    /* Half of a push: the count and the exchange, not the link. */
    atomic_fetch_add(&box->count, 1);
    atomic_store(&m[0].node.next, NULL);
    mbox_node_t *prev = atomic_exchange(&box->head, &m[0].node);
    ASSERT_NULL(mbox_pop(box));
    ASSERT_NULL(mbox_pop(box));
    ASSERT_EQ(atomic_load(&box->sleeping), 1);
    /* The producer finishes: link, then its wake-up check finds the box armed. */
    atomic_store(&prev->next, &m[0].node);
    ASSERT_EQ(atomic_exchange(&box->sleeping, 0), 1);
    mbox_rewake(box); /* what mbox_send does on reading 1 */
    /* Another producer's whole send behind it: no second wake-up needed. */
    ASSERT_OK(mbox_send(box, &m[1].node));
    run_once(loop);
    if (first != NULL) {
        ASSERT_TRUE(d->order[base++] == first);
    }
    ASSERT_EQ(d->got, base + 2);
    ASSERT_TRUE(d->order[base] == &m[0]);
    ASSERT_TRUE(d->order[base + 1] == &m[1]);
    ASSERT_EQ(atomic_load(&box->count), 0);
    ASSERT_EQ(atomic_load(&box->sleeping), 1);
}

TEST(mbox_half_push_then_wake)
{
    uv_loop_t loop;
    mbox_t box;
    drain_t d = {0};
    msg_t m[4];

    ASSERT_OK(uv_loop_init(&loop));
    ASSERT_OK(mbox_init(&box, &loop, 64, on_wake_drain));
    box.data = &d;
    /* The stub at the tail: the box looks empty. */
    half_push_case(&loop, &box, &d, m, NULL);
    /* A real node at the tail, the last one: tail->next is NULL but head moved on. */
    ASSERT_OK(mbox_send(&box, &m[2].node));
    ASSERT_OK(mbox_send(&box, &m[3].node));
    ASSERT_TRUE(msg_of(mbox_pop(&box)) == &m[2]);
    ASSERT_TRUE(box.tail == &m[3].node);
    half_push_case(&loop, &box, &d, m, &m[3]);
    close_all(&loop, &box);
}

/* --- many producers, one consumer loop --------------------------------------------- */

/* Overridable for hand-built stress runs (e.g. -DWATCHDOG_MS=5000 -DPP_ROUNDS=300000 with a
 * copy of mbox.c that sleeps at random points to widen the race windows). */
#ifndef WATCHDOG_MS
#define WATCHDOG_MS 100000 /* a lost wake-up fails with a diagnosis before the timeout */
#endif

#define NPROD 4
#define PER_PROD 200000
#define BOX_MAX 4096
#define BUDGET 512

typedef struct mp {
    uv_loop_t loop;
    mbox_t box;
    uv_timer_t watchdog;
    pthread_t threads[NPROD];
    msg_t *msgs[NPROD];
    uint32_t next_seq[NPROD]; /* consumer only */
    uint64_t received;        /* consumer only */
    uint64_t wakes;           /* consumer only */
    _Atomic uint64_t full;    /* RC_EFULL answers, all producers */
    int closed;
} mp_t;

typedef struct prod_arg {
    mp_t *mp;
    uint32_t id;
} prod_arg_t;

static prod_arg_t prod_args[NPROD];

static void *producer(void *arg)
{
    prod_arg_t *pa = arg;
    mp_t *mp = pa->mp;
    msg_t *msgs = mp->msgs[pa->id];
    uint64_t full = 0;
    int rc;

    for (uint32_t i = 0; i < PER_PROD; i++) {
        msgs[i].producer = pa->id;
        msgs[i].seq = i;
        /* Every 1000th message is forced, the way "connection closed" notes are. */
        if (i % 1000 == 999) {
            ASSERT_OK(mbox_send_force(&mp->box, &msgs[i].node));
            continue;
        }
        while ((rc = mbox_send(&mp->box, &msgs[i].node)) == RC_EFULL) {
            full++;
            sched_yield();
        }
        ASSERT_OK(rc);
    }
    atomic_fetch_add(&mp->full, full);
    return NULL;
}

static void on_mp_box_closed(uv_handle_t *h)
{
    mp_t *mp = ((mbox_t *)h->data)->data;
    mp->closed++;
}

static void on_mp_timer_closed(uv_handle_t *h)
{
    mp_t *mp = h->data;
    mp->closed++;
}

static void finish(mp_t *mp)
{
    /* Every message is in; the producers are returning from their last send. They must
     * be gone before the box closes (mbox_close's contract), so join them here: a short
     * wait, and only in a test. */
    for (int p = 0; p < NPROD; p++)
        ASSERT_OK(pthread_join(mp->threads[p], NULL));
    ASSERT_NULL(mbox_pop(&mp->box));
    ASSERT_EQ(atomic_load(&mp->box.count), 0);
    mbox_close(&mp->box, on_mp_box_closed);
    uv_close((uv_handle_t *)&mp->watchdog, on_mp_timer_closed);
}

static void on_mp_wake(mbox_t *box)
{
    mp_t *mp = box->data;
    mbox_node_t *n;

    mp->wakes++;
    for (int k = 0; k < BUDGET; k++) {
        if ((n = mbox_pop(box)) == NULL)
            return;
        msg_t *m = msg_of(n);
        if (m->producer >= NPROD)
            TEST_FAIL_("bad producer %u", m->producer);
        if (m->seq != mp->next_seq[m->producer])
            TEST_FAIL_("producer %u: got seq %u, want %u (lost, duplicated or reordered)",
                       m->producer, m->seq, mp->next_seq[m->producer]);
        mp->next_seq[m->producer]++;
        if (++mp->received == (uint64_t)NPROD * PER_PROD) {
            finish(mp);
            return;
        }
    }
    mbox_rewake(box);
}

static void on_watchdog(uv_timer_t *t)
{
    mp_t *mp = t->data;
    TEST_FAIL_("stuck: received %" PRIu64 " of %d, %zu queued, sleeping %d (lost wake-up?)",
               mp->received, NPROD * PER_PROD, atomic_load(&mp->box.count),
               atomic_load(&mp->box.sleeping));
}

TEST_TIMEOUT(mbox_many_producers, 120)
{
    mp_t *mp = mem_calloc(sizeof(*mp));

    ASSERT_OK(uv_loop_init(&mp->loop));
    ASSERT_OK(mbox_init(&mp->box, &mp->loop, BOX_MAX, on_mp_wake));
    mp->box.data = mp;
    ASSERT_OK(uv_timer_init(&mp->loop, &mp->watchdog));
    mp->watchdog.data = mp;
    ASSERT_OK(uv_timer_start(&mp->watchdog, on_watchdog, WATCHDOG_MS, 0));
    for (int p = 0; p < NPROD; p++) {
        mp->msgs[p] = mem_calloc(sizeof(msg_t) * PER_PROD);
        prod_args[p].mp = mp;
        prod_args[p].id = (uint32_t)p;
    }
    for (int p = 0; p < NPROD; p++)
        ASSERT_OK(pthread_create(&mp->threads[p], NULL, producer, &prod_args[p]));
    ASSERT_OK(uv_run(&mp->loop, UV_RUN_DEFAULT));
    ASSERT_EQ(mp->closed, 2);
    ASSERT_U64_EQ(mp->received, (uint64_t)NPROD * PER_PROD);
    for (int p = 0; p < NPROD; p++)
        ASSERT_EQ(mp->next_seq[p], PER_PROD);
    ASSERT_OK(uv_loop_close(&mp->loop));
    printf("%" PRIu64 " wake-ups, %" PRIu64 " RC_EFULL retries\n", mp->wakes,
           atomic_load(&mp->full));
    for (int p = 0; p < NPROD; p++)
        mem_free(mp->msgs[p]);
    mem_free(mp);
}

/* --- ping-pong: the box goes empty after every message ------------------------------ */

#define PP_PROD 3
#ifndef PP_ROUNDS
#define PP_ROUNDS 20000
#endif

typedef struct pp {
    uv_loop_t loop;
    mbox_t box;
    uv_timer_t watchdog;
    pthread_t threads[PP_PROD];
    msg_t msgs[PP_PROD];
    _Atomic uint32_t consumed[PP_PROD]; /* written by the consumer, read by producer p */
    uint64_t received;                  /* consumer only */
    int closed;
} pp_t;

typedef struct pp_arg {
    pp_t *pp;
    uint32_t id;
} pp_arg_t;

static pp_arg_t pp_args[PP_PROD];

/* Each producer sends one message and waits until the consumer has taken it, so the
 * consumer keeps finding the box empty and every message crosses the sleeping edge. A lost
 * wake-up hangs the producer (and the watchdog fires). */
static void *pp_producer(void *arg)
{
    pp_arg_t *a = arg;
    pp_t *pp = a->pp;
    msg_t *m = &pp->msgs[a->id];

    m->producer = a->id;
    for (uint32_t i = 0; i < PP_ROUNDS; i++) {
        m->seq = i; /* the consumer is done with m: consumed[] said so */
        ASSERT_OK(mbox_send(&pp->box, &m->node));
        while (atomic_load_explicit(&pp->consumed[a->id], memory_order_acquire) != i + 1)
            sched_yield();
    }
    return NULL;
}

static void on_pp_box_closed(uv_handle_t *h)
{
    pp_t *pp = ((mbox_t *)h->data)->data;
    pp->closed++;
}

static void on_pp_timer_closed(uv_handle_t *h)
{
    pp_t *pp = h->data;
    pp->closed++;
}

static void on_pp_wake(mbox_t *box)
{
    pp_t *pp = box->data;
    mbox_node_t *n;

    while ((n = mbox_pop(box)) != NULL) {
        msg_t *m = msg_of(n);
        uint32_t p = m->producer;
        uint32_t want = atomic_load_explicit(&pp->consumed[p], memory_order_relaxed);
        if (m->seq != want)
            TEST_FAIL_("producer %u: got seq %u, want %u", p, m->seq, want);
        atomic_store_explicit(&pp->consumed[p], want + 1, memory_order_release);
        if (++pp->received == (uint64_t)PP_PROD * PP_ROUNDS) {
            for (int i = 0; i < PP_PROD; i++)
                ASSERT_OK(pthread_join(pp->threads[i], NULL));
            mbox_close(&pp->box, on_pp_box_closed);
            uv_close((uv_handle_t *)&pp->watchdog, on_pp_timer_closed);
            return;
        }
    }
}

static void on_pp_watchdog(uv_timer_t *t)
{
    pp_t *pp = t->data;
    TEST_FAIL_("stuck: received %" PRIu64 " of %d, %zu queued, sleeping %d (lost wake-up?)",
               pp->received, PP_PROD * PP_ROUNDS, atomic_load(&pp->box.count),
               atomic_load(&pp->box.sleeping));
}

TEST_TIMEOUT(mbox_ping_pong_edges, 120)
{
    pp_t *pp = mem_calloc(sizeof(*pp));

    ASSERT_OK(uv_loop_init(&pp->loop));
    ASSERT_OK(mbox_init(&pp->box, &pp->loop, 16, on_pp_wake));
    pp->box.data = pp;
    ASSERT_OK(uv_timer_init(&pp->loop, &pp->watchdog));
    pp->watchdog.data = pp;
    ASSERT_OK(uv_timer_start(&pp->watchdog, on_pp_watchdog, WATCHDOG_MS, 0));
    for (int p = 0; p < PP_PROD; p++) {
        pp_args[p].pp = pp;
        pp_args[p].id = (uint32_t)p;
        ASSERT_OK(pthread_create(&pp->threads[p], NULL, pp_producer, &pp_args[p]));
    }
    ASSERT_OK(uv_run(&pp->loop, UV_RUN_DEFAULT));
    ASSERT_EQ(pp->closed, 2);
    ASSERT_U64_EQ(pp->received, (uint64_t)PP_PROD * PP_ROUNDS);
    ASSERT_OK(uv_loop_close(&pp->loop));
    mem_free(pp);
}
