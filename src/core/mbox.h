/**
 * mbox: an actor's mailbox — a lock-free multi-producer single-consumer queue plus the
 * uv_async_t that wakes the consumer's loop.
 *
 * Design. An intrusive Vyukov MPSC list: a message embeds an mbox_node_t; a push is one
 * atomic exchange on the head and one store, wait-free for producers; the single consumer
 * pops from the tail without atomics read-modify-write. mbox_send wakes the consumer with
 * uv_async_send only on the empty → non-empty edge (an atomic "sleeping" flag the consumer
 * sets before it waits), so a busy mailbox costs producers no syscalls. Because wake-ups
 * coalesce, the on_wake callback drains until mbox_pop returns NULL (or a per-turn budget
 * is spent, after which it calls mbox_rewake so the loop serves its sockets in between).
 *
 * The mailbox is bounded: mbox_send refuses past @p max queued messages (RC_EFULL), so a
 * slow actor turns into backpressure, not unbounded memory. mbox_send_force ignores the
 * bound, for the few messages that must never be dropped (a connection closed, shutdown).
 *
 * Threading: mbox_init, mbox_pop, mbox_rewake and mbox_close run on the consumer's loop
 * thread. mbox_send and mbox_send_force are thread-safe: they are the only cross-thread
 * entry points (they wrap uv_async_send, the one thread-safe libuv call).
 */
#ifndef CIM_CORE_MBOX_H
#define CIM_CORE_MBOX_H

#include <stdatomic.h>
#include <stddef.h>
#include <uv.h>

/** Embed one in every message; the receiver recovers the message with container_of. */
typedef struct mbox_node {
    struct mbox_node *_Atomic next;
} mbox_node_t;

typedef struct mbox mbox_t;

/** Called on the consumer's loop when messages may be waiting. */
typedef void (*mbox_wake_cb)(mbox_t *box);

struct mbox {
    mbox_node_t *_Atomic head; /* producers push here (most recent) */
    mbox_node_t *tail;         /* consumer pops here (oldest); consumer only */
    mbox_node_t stub;
    _Atomic size_t count;      /* messages queued */
    _Atomic int sleeping;      /* 1 when the consumer may be waiting for a wake-up */
    _Atomic int closed;
    size_t max;                /* bound for mbox_send; immutable */
    mbox_wake_cb on_wake;
    void *data;                /* the owner's; mbox never touches it */
    uv_async_t async;
};

/**
 * Set up @p box on @p loop (the consumer's loop, from its thread, before any producer
 * can see the box). box->data is left alone (set it before or after).
 * @param[in] max      the bound for mbox_send (>= 1).
 * @param[in] on_wake  called on @p loop's thread when messages may be waiting. It must
 *                     drain until mbox_pop returns NULL, or call mbox_rewake before it
 *                     returns: otherwise no further wake-up comes.
 * @return 0, or UV_EINVAL (max is 0 or on_wake NULL), or a UV_E* code from uv_async_init.
 */
int mbox_init(mbox_t *box, uv_loop_t *loop, size_t max, mbox_wake_cb on_wake);

/**
 * Queue @p node for the consumer and wake its loop if it sleeps.
 * @param[in] node  embedded in a message. On success ownership of the message moves to
 *                  the consumer; on failure the caller still owns it.
 * @return 0, or RC_EFULL (max messages queued), RC_ECLOSED (mbox_close was called).
 * @note Thread-safe.
 */
int mbox_send(mbox_t *box, mbox_node_t *node);

/** As mbox_send, but never RC_EFULL. @return 0, or RC_ECLOSED. Thread-safe. */
int mbox_send_force(mbox_t *box, mbox_node_t *node);

/**
 * Take the oldest message.
 *
 * Returning NULL also arms the wake-up: the next producer to finish a push calls
 * uv_async_send, so on_wake runs again for it. (When the box looks empty, mbox_pop sets
 * `sleeping` and looks once more before it gives up.) Messages from one producer come out
 * in the order it sent them; messages from different producers interleave in some order.
 *
 * @return the node, or NULL when the mailbox is empty (or a producer is half-way through a
 *         push; that producer's wake-up follows its push, so the consumer simply returns).
 * @note Consumer thread only.
 */
mbox_node_t *mbox_pop(mbox_t *box);

/**
 * Schedule another on_wake on the next loop turn, after a drain that stopped at its budget
 * before mbox_pop returned NULL. Consumer thread only.
 */
void mbox_rewake(mbox_t *box);

/**
 * Refuse further sends and close the async handle; @p cb runs when it is closed (its
 * handle's data is @p box; the mbox_t must stay valid until then). Consumer thread only.
 *
 * Every send that starts after mbox_close fails with RC_ECLOSED, but one already under
 * way may still queue its message after mbox_close returns. The messages left are the
 * caller's to drain with mbox_pop once its producers are done (no send in flight, none to
 * come), which they must be before the box's memory is freed: mbox cannot know about them.
 */
void mbox_close(mbox_t *box, uv_close_cb cb);

#ifndef container_of
#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#endif

#endif
