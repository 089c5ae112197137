#include "core/mbox.h"

#include "core/log.h"
#include "core/rc.h"

/*
 * The queue is Dmitry Vyukov's intrusive MPSC list. head is the most recently pushed
 * node; tail is the oldest not yet taken; stub is a dummy node that keeps the list
 * non-empty so that producers never touch tail. A push is
 *
 *     node->next = NULL;  prev = exchange(head, node);  prev->next = node;
 *
 * Between the exchange and the last store, the list is cut in two: the node is reachable
 * from head but not from tail. The consumer sees this "inconsistent state" as tail->next
 * == NULL while head != tail and reports the box as empty; the message is not lost,
 * because that producer has not yet done its wake-up check (below), which comes after
 * its link.
 *
 * Wake-ups. sleeping == 1 means "the consumer may be about to wait: the next producer
 * must wake it". The consumer sets it (atomic exchange) when mbox_pop finds the box
 * empty, then looks again before it returns NULL; a producer links its node and then
 * exchanges sleeping to 0, and calls uv_async_send only if it read 1. Every write to
 * sleeping is a read-modify-write, so whichever of the two exchanges comes second in
 * sleeping's modification order reads the other's value:
 *  - the producer's second: it reads 1 and sends the wake-up, after its node is linked;
 *  - the consumer's second: it reads the producer's write (or a later RMW, which is in
 *    the producer's release sequence), synchronizes with it, and so its second look sees
 *    the link. If that look still returns NULL, another producer ahead in the list is
 *    half-way through its push; that producer's own exchange is still to come and the
 *    same argument applies to it.
 * A plain load of sleeping on the producer side would not do: push-then-load against
 * store-then-load is the store-buffering pattern, which acquire/release allows to miss
 * on both sides.
 *
 * When the consumer's second look does find a message, it clears sleeping again, so
 * that producers sending into a busy mailbox make no syscalls.
 */

static void push(mbox_t *box, mbox_node_t *node)
{
    mbox_node_t *prev;

    atomic_store_explicit(&node->next, NULL, memory_order_relaxed);
    /* acq_rel: release publishes node->next = NULL (and the message) to the producer
     * that links after us; acquire orders our link below after the previous pusher's
     * own next = NULL store. */
    prev = atomic_exchange_explicit(&box->head, node, memory_order_acq_rel);
    atomic_store_explicit(&prev->next, node, memory_order_release);
}

/* Vyukov's pop: the oldest node, or NULL when empty or a push is half-way. */
static mbox_node_t *take(mbox_t *box)
{
    mbox_node_t *tail = box->tail;
    mbox_node_t *next = atomic_load_explicit(&tail->next, memory_order_acquire);

    if (tail == &box->stub) {
        if (next == NULL)
            return NULL;
        box->tail = next;
        tail = next;
        next = atomic_load_explicit(&tail->next, memory_order_acquire);
    }
    if (next != NULL) {
        box->tail = next;
        return tail;
    }
    if (tail != atomic_load_explicit(&box->head, memory_order_acquire))
        return NULL; /* inconsistent: a producer is between its exchange and its link */
    /* tail is the last node: put the stub behind it so that tail can be handed out. */
    push(box, &box->stub);
    next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (next != NULL) {
        box->tail = next;
        return tail;
    }
    return NULL; /* a producer got in before the stub and has not linked yet */
}

static void on_wake(uv_async_t *async)
{
    mbox_t *box = container_of(async, mbox_t, async);

    box->on_wake(box);
}

int mbox_init(mbox_t *box, uv_loop_t *loop, size_t max, mbox_wake_cb on_wake_cb)
{
    int rc;

    if (max == 0 || on_wake_cb == NULL)
        return UV_EINVAL;
    atomic_init(&box->stub.next, NULL);
    atomic_init(&box->head, &box->stub);
    box->tail = &box->stub;
    atomic_init(&box->count, 0);
    atomic_init(&box->sleeping, 1); /* nobody is draining yet: the first send wakes */
    atomic_init(&box->closed, 0);
    box->max = max;
    box->on_wake = on_wake_cb;
    if ((rc = uv_async_init(loop, &box->async, on_wake)) < 0)
        return rc;
    box->async.data = box;
    return 0;
}

static void enqueue(mbox_t *box, mbox_node_t *node)
{
    int rc;

    push(box, node);
    if (atomic_exchange_explicit(&box->sleeping, 0, memory_order_acq_rel) == 1) {
        /* uv_async_send fails only on a broken eventfd/pipe, which leaves nothing to
         * retry; the message stays queued for the next wake-up. */
        if ((rc = uv_async_send(&box->async)) < 0)
            LOG_RL(LOG_LVL_ERROR, "mbox: uv_async_send: %s", uv_strerror(rc));
    }
}

int mbox_send(mbox_t *box, mbox_node_t *node)
{
    size_t n;

    if (atomic_load_explicit(&box->closed, memory_order_acquire))
        return RC_ECLOSED;
    /* Reserve a slot first, so the bound holds however many producers race. */
    n = atomic_load_explicit(&box->count, memory_order_relaxed);
    do {
        if (n >= box->max)
            return RC_EFULL;
    } while (!atomic_compare_exchange_weak_explicit(&box->count, &n, n + 1, memory_order_relaxed,
                                                    memory_order_relaxed));
    enqueue(box, node);
    return 0;
}

int mbox_send_force(mbox_t *box, mbox_node_t *node)
{
    if (atomic_load_explicit(&box->closed, memory_order_acquire))
        return RC_ECLOSED;
    atomic_fetch_add_explicit(&box->count, 1, memory_order_relaxed);
    enqueue(box, node);
    return 0;
}

mbox_node_t *mbox_pop(mbox_t *box)
{
    mbox_node_t *node = take(box);

    if (node == NULL) {
        /* Looks empty: announce the wait, then look again (see the top of this file). */
        (void)atomic_exchange_explicit(&box->sleeping, 1, memory_order_acq_rel);
        node = take(box);
        if (node == NULL)
            return NULL;
        /* Not empty after all: we keep draining, so producers need not wake us. */
        (void)atomic_exchange_explicit(&box->sleeping, 0, memory_order_acq_rel);
    }
    atomic_fetch_sub_explicit(&box->count, 1, memory_order_relaxed);
    return node;
}

void mbox_rewake(mbox_t *box)
{
    int rc;

    if ((rc = uv_async_send(&box->async)) < 0)
        LOG_RL(LOG_LVL_ERROR, "mbox: uv_async_send: %s", uv_strerror(rc));
}

void mbox_close(mbox_t *box, uv_close_cb cb)
{
    atomic_store_explicit(&box->closed, 1, memory_order_release);
    uv_close((uv_handle_t *)&box->async, cb);
}
