#include "actors/throttle.h"

#include <pthread.h>
#include <string.h>

#include "core/mem.h"

#define STRIPES 64
#define PER_STRIPE (THROTTLE_SLOTS / STRIPES)

typedef struct slot {
    peer_addr_t addr;
    uint64_t start_s; /* first failure of the current window; 0 = free slot */
    uint32_t fails;
} slot_t;

typedef struct stripe {
    pthread_mutex_t mu;
    slot_t slot[PER_STRIPE];
} stripe_t;

struct throttle {
    uint32_t max, window_s;
    stripe_t stripe[STRIPES];
};

throttle_t *throttle_new(uint32_t max, uint32_t window_s)
{
    throttle_t *t = mem_calloc(sizeof(*t));
    t->max = max;
    t->window_s = window_s ? window_s : 1;
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&t->stripe[i].mu, NULL);
    return t;
}

void throttle_free(throttle_t *t)
{
    if (t == NULL)
        return;
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_destroy(&t->stripe[i].mu);
    mem_free(t);
}

/* The slot of @p peer in @p st, or NULL. Stripe lock held. */
static slot_t *lookup(stripe_t *st, const peer_addr_t *peer)
{
    for (int i = 0; i < PER_STRIPE; i++)
        if (st->slot[i].start_s != 0 && memcmp(&st->slot[i].addr, peer, sizeof(*peer)) == 0)
            return &st->slot[i];
    return NULL;
}

bool throttle_blocked(throttle_t *t, const peer_addr_t *peer, uint64_t now_s,
                      uint32_t *retry_s)
{
    stripe_t *st;
    slot_t *sl;
    bool blocked = false;

    if (t == NULL || t->max == 0)
        return false;
    st = &t->stripe[peer_addr_hash(peer) % STRIPES];
    pthread_mutex_lock(&st->mu);
    sl = lookup(st, peer);
    if (sl != NULL && now_s < sl->start_s + t->window_s && sl->fails >= t->max) {
        blocked = true;
        *retry_s = (uint32_t)(sl->start_s + t->window_s - now_s);
    }
    pthread_mutex_unlock(&st->mu);
    return blocked;
}

uint32_t throttle_fail(throttle_t *t, const peer_addr_t *peer, uint64_t now_s)
{
    stripe_t *st;
    slot_t *sl, *victim;
    uint32_t n;

    if (t == NULL || t->max == 0)
        return 0;
    if (now_s == 0)
        now_s = 1; /* 0 marks a free slot */
    st = &t->stripe[peer_addr_hash(peer) % STRIPES];
    pthread_mutex_lock(&st->mu);
    sl = lookup(st, peer);
    if (sl == NULL) {
        /* A free slot, else the one whose window began first (expired ones are older
         * than any live one). */
        victim = &st->slot[0];
        for (int i = 0; i < PER_STRIPE && victim->start_s != 0; i++)
            if (st->slot[i].start_s < victim->start_s)
                victim = &st->slot[i];
        sl = victim;
        sl->addr = *peer;
        sl->start_s = 0;
    }
    if (sl->start_s == 0 || now_s >= sl->start_s + t->window_s) {
        sl->start_s = now_s;
        sl->fails = 0;
    }
    n = ++sl->fails;
    pthread_mutex_unlock(&st->mu);
    return n;
}
